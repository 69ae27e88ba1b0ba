// The Figure 1 preset's worker: runs the experiment (experiments/figure1.js) off the main
// thread and posts each measurement as it comes. One worker per run; the page terminates it
// on Reset. Protocol (the library's worker shape): requests {id, type: 'run' | 'pause' |
// 'resume', ...}; replies {id, type: 'progress' | 'result' | 'error', ...}.
//   run {preset, data: {train, test}}  -> progress {measurement} per measurement, then result {step}
//   pause                              -> result {step} once training has stopped
//   resume                             -> result {}
import { runFigure1 } from './experiments/figure1.js';

let step = 0; // of the latest measurement
let pauseIds = []; // pause requests to answer at the next measurement
let resumeRun = null; // set while paused: continues the run

const reply = (message) => self.postMessage(message);

// runFigure1 trains synchronously between measurements, so messages (pause) are read only
// when the run waits for the next task: after every measurement.
const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

async function run({ id, preset, data }) {
  try {
    for await (const m of runFigure1(data, preset)) {
      step = m.step;
      // Only what the page draws: the per-unit percentiles stay here.
      reply({ id, type: 'progress', measurement: { step: m.step, accuracy: m.accuracy, percentiles: m.percentiles } });
      await nextTask();
      if (pauseIds.length) {
        const resumed = new Promise((resolve) => (resumeRun = resolve));
        for (const pauseId of pauseIds) reply({ id: pauseId, type: 'result', step });
        pauseIds = [];
        await resumed;
      }
    }
    for (const pauseId of pauseIds) reply({ id: pauseId, type: 'result', step });
    pauseIds = [];
    reply({ id, type: 'result', step });
  } catch (error) {
    reply({ id, type: 'error', error: { name: error?.name ?? 'Error', message: error?.message ?? String(error) } });
  }
}

self.addEventListener('message', ({ data: request }) => {
  const { id, type } = request;
  if (type === 'run') run(request);
  else if (type === 'pause') {
    if (resumeRun) reply({ id, type: 'result', step });
    else pauseIds.push(id);
  } else if (type === 'resume') {
    resumeRun?.();
    resumeRun = null;
    reply({ id, type: 'result' });
  } else {
    reply({ id, type: 'error', error: { name: 'TypeError', message: `figure1 worker: unknown request type ${JSON.stringify(type)}` } });
  }
});
