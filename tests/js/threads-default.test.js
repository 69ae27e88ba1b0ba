// The default thread count is the cores available, held to the most configure() takes (256): a
// machine that reports more cores (a large Node server) starts 256, not one thread per core.
// The platform's cores and threaded start are stand-ins here, so no thread is started: the test
// is about the count asked for. (Its own file: the count is read once per module registry.)
import { threadCount } from 'bnwasm';
import { platform, setPlatform } from '../../web/src/platform.js';

test('the default thread count is the cores, at most 256', async () => {
  const asked = [];
  const real = { cores: platform.cores, instantiateThreaded: platform.instantiateThreaded };
  setPlatform({
    cores: () => 1000,
    instantiateThreaded: async (threads) => {
      asked.push(threads);
      return null; // this realm cannot run threads: the single-thread module loads
    },
  });
  try {
    expect(await threadCount()).toBe(1);
  } finally {
    setPlatform(real);
  }
  expect(asked).toEqual([256]);
});
