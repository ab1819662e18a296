// The local dev chain for tests and the docker-compose `chain` profile (issue 17): Hardhat's
// node (EDR engine inside the npm package) with its default funded accounts, chain id 31337.
module.exports = { networks: { hardhat: { chainId: 31337 } } };
