//! The look both apps share: system fonts, a header bar, plain tables.

/// The apps' stylesheet (a report's follows it).
pub const APP: &str = r#"
body{font:16px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#123a6b;color:#fff}
header a{color:#fff;margin-right:1em;text-decoration:none}header .brand{margin-right:1em}
header form.signout{margin-left:auto}
main{padding:1em 1.2em;max-width:1100px}
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #e4e4e4;text-align:left}
.glucose{font-size:3.2em;margin:.2em 0}.glucose .unit{font-size:.35em;color:#555}.age{color:#555}
li.alert.urgent{color:#8b1a10}form.inline{display:inline;margin-left:.6em}
form.login label,form.add label,form.grant label,form.emergency label{display:block;margin:.4em 0}
form label.check{display:inline-block;margin:.2em 1em .2em 0}fieldset{border:1px solid #ddd;margin:.4em 0}
tr.ended{color:#777}form.family label{display:block;margin:.4em 0}
section.share{page-break-after:always;margin:1.5em 0}code.share{word-break:break-all}
.qr svg{width:220px;height:220px}code.password{font-size:1.1em;background:#fff4d6;padding:.1em .3em}
pre#siwe-message{background:#fff;border:1px solid #ddd;padding:.6em;white-space:pre-wrap;max-width:46em}
td.open{color:#8b1a10;font-weight:600}p.notice{background:#fff4d6;padding:.4em .6em}
span.flag{font-size:.85em;padding:0 .35em;border-radius:3px;background:#e8eef6}
table.fleet tr.silent,table.fleet tr.misbehaving{color:#8b1a10}table.fleet tr.lagging{color:#8a5a00}
"#;
