/** Jest needs the test CA trusted from process start, which only `npm test` (test/support/runTests.ts) arranges. */
export default function globalSetup(): void {
  if (!process.env.TEST_CA_DIR || !process.env.NODE_EXTRA_CA_CERTS || !process.env.TEST_AZURITE_CONNECTION_STRING) {
    throw new Error(
      'Run the tests with `npm test` (extra jest arguments go after `--`): it creates the test CA and starts Azurite first.',
    );
  }
}
