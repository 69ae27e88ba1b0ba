// The bad-input cases of errors.test.js again, on the single-thread module (errors.test.js runs
// on the threaded one, Node's default on a machine with more than one core).
import { configure, threadCount } from 'bnwasm';

configure({ threads: 1 });
await import('./errors.test.js');

test('these ran on the single-thread module', async () => {
  expect(await threadCount()).toBe(1);
});
