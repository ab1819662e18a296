// Compiles PackproofAnchor.sol with the pinned solc (package-lock.json) and prints the
// artifact committed as PackproofAnchor.json; tests/anchor/test_chain_contract.py compares them.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const source = fs.readFileSync(path.join(__dirname, "PackproofAnchor.sol"), "utf8");
const input = {
  language: "Solidity",
  sources: { "PackproofAnchor.sol": { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { PackproofAnchor: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) process.stderr.write(e.formattedMessage);
  process.exit(1);
}
const c = out.contracts["PackproofAnchor.sol"].PackproofAnchor;
const artifact = {
  contractName: "PackproofAnchor",
  compiler: "solc " + solc.version(),
  settings: { optimizer: input.settings.optimizer, bytecodeHash: "none" },
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
  deployedBytecode: "0x" + c.evm.deployedBytecode.object,
};
process.stdout.write(JSON.stringify(artifact, null, 2) + "\n");
