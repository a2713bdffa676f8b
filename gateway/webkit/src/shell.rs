//! The frame every page of both web apps shares: the head, the header with
//! the app's name and, once signed in, its menu and a sign-out form
//! carrying the session's CSRF token.

use maud::{DOCTYPE, Markup, html};

/// What the header shows to someone signed in.
pub struct SignedIn<'a> {
    /// The menu: (path, label).
    pub menu: &'a [(&'a str, &'a str)],
    /// Shown between the menu and the sign-out button (who is signed in).
    pub who: Option<Markup>,
    pub csrf: &'a str,
}

/// A whole page: `title · app`, the header, then `body` in `main`.
pub fn page(app: &str, title: &str, signed_in: Option<SignedIn<'_>>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (app) }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header.no-print {
                    strong.brand { (app) }
                    @if let Some(signed_in) = signed_in {
                        nav {
                            @for (path, label) in signed_in.menu {
                                a href=(path) { (label) }
                            }
                        }
                        @if let Some(who) = signed_in.who {
                            span { (who) }
                        }
                        form.signout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(signed_in.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_menu_and_sign_out_show_only_to_someone_signed_in() {
        let body = html! { p { "<hello>" } };
        let anonymous = page("glyco hub", "Sign in", None, body.clone());
        assert!(anonymous.contains("<title>Sign in · glyco hub</title>"));
        assert!(anonymous.contains("<p>&lt;hello&gt;</p>"));
        assert!(!anonymous.contains("<nav>") && !anonymous.contains("/logout"));

        let signed_in = page(
            "glyco clinic",
            "Patients",
            Some(SignedIn {
                menu: &[("/", "Patients"), ("/fleet", "Fleet")],
                who: Some(html! { code { "0xAb…12" } }),
                csrf: "t\"ok",
            }),
            body,
        );
        assert!(signed_in.contains(r#"<a href="/fleet">Fleet</a>"#));
        assert!(signed_in.contains("<span><code>0xAb…12</code></span>"));
        // The token is an attribute value, escaped.
        assert!(signed_in.contains(r#"name="csrf" value="t&quot;ok""#));
    }
}
