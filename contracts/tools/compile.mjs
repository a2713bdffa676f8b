// Compiles contracts/sol/*.sol with the pinned solcjs and writes one artifact
// per contract to contracts/artifacts/<Name>.json (ABI, bytecode, the compiler
// settings and the keccak256 of every source the contract was built from).
//
//   node contracts/tools/compile.mjs          write artifacts
//   node contracts/tools/compile.mjs --check  fail if any artifact is stale
//
// solc is resolved from tools/node_modules (see tools/package.json).
import { createRequire } from "node:module";
import { readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const contractsDir = join(here, "..");
const solDir = join(contractsDir, "sol");
const artifactsDir = join(contractsDir, "artifacts");
const require = createRequire(join(contractsDir, "..", "tools", "package.json"));
const solc = require("solc");

// London: runs on any QBFT network from Besu's default genesis (no PUSH0, MCOPY or
// transient storage needed); see docs/PRODUCTION-CHAIN.md.
const EVM_VERSION = "london";
const OPTIMIZER_RUNS = 200;

const sources = {};
for (const file of readdirSync(solDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[file] = { content: readFileSync(join(solDir, file), "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
    evmVersion: EVM_VERSION,
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const check = process.argv.includes("--check");
let stale = [];
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (name !== file.replace(/\.sol$/, "")) continue; // one public contract per file
    if (c.evm.bytecode.object === "") continue; // abstract: inherited, never deployed
    const metadata = JSON.parse(c.metadata);
    const artifact = {
      contractName: name,
      sourceFile: file,
      compiler: { solc: solc.version(), evmVersion: EVM_VERSION, optimizerRuns: OPTIMIZER_RUNS },
      sources: Object.fromEntries(Object.entries(metadata.sources).map(([f, s]) => [f, s.keccak256])),
      abi: c.abi,
      bytecode: { object: "0x" + c.evm.bytecode.object },
      deployedBytecode: { object: "0x" + c.evm.deployedBytecode.object },
    };
    const text = JSON.stringify(artifact, null, 2) + "\n";
    const path = join(artifactsDir, `${name}.json`);
    if (check) {
      if (!existsSync(path) || readFileSync(path, "utf8") !== text) stale.push(name);
    } else {
      writeFileSync(path, text);
      console.log(`wrote artifacts/${name}.json (${c.evm.deployedBytecode.object.length / 2} bytes deployed)`);
    }
  }
}
if (check) {
  // An artifact whose contract no longer exists is stale too (no v1 left behind).
  const built = new Set(Object.values(output.contracts).flatMap((cs) => Object.keys(cs)));
  for (const file of readdirSync(artifactsDir).filter((f) => f.endsWith(".json"))) {
    const name = file.replace(/\.json$/, "");
    if (!built.has(name)) stale.push(`${name} (no source)`);
  }
  if (stale.length > 0) {
    console.error(`stale contract artifacts: ${stale.join(", ")} — run: node contracts/tools/compile.mjs`);
    process.exit(1);
  }
  console.log("contract artifacts match their sources");
}
