// Prints one plain closing line, "jest: N passed, N failed, N skipped", and keeps it in
// test-artifacts/summary.txt so that .ci/run can repeat it as its very last line.
// Skipped tests are counted apart: a skipped test is never a passing one.
const fs = require('node:fs');
const path = require('node:path');

class SummaryReporter {
  onRunComplete(_contexts, results) {
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const skipped = results.numPendingTests + results.numTodoTests;
    const line = `jest: ${results.numPassedTests} passed, ${failed} failed, ${skipped} skipped\n`;
    process.stdout.write(`\n${line}`);
    const dir = path.join(__dirname, '..', '..', 'test-artifacts');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'summary.txt'), line);
  }
}
module.exports = SummaryReporter;
