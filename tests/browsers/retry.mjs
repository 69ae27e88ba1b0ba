// One more attempt for a browser test whose first attempt failed, said in a line of its own
// ("# RETRIED ..."; npm test's summary lists these by name): on these shared 2-core machines a
// browser's driver has gone unanswered for minutes while every check of the page passed. Two
// failed attempts fail the test.

/** Runs fn; if it throws, logs why and runs it once more, whose outcome stands. */
export async function retryOnce(label, fn) {
  try {
    return await fn();
  } catch (error) {
    console.log(`# RETRIED ${label}: the first attempt failed, running it again: ${error.message.split('\n')[0]}`);
    return fn();
  }
}
