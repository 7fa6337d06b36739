// BullMQ as a benchmark peer: the same measurements ./dev bench takes of jobplatform.
//
//   node bench/node/bullmq.mjs drain   --jobs N --concurrency C   pre-enqueued no-op drain
//   node bench/node/bullmq.mjs io      --jobs N --concurrency C --url U   each job GETs U
//   node bench/node/bullmq.mjs enqueue --jobs N                   awaited add, addBulk
//
// Redis comes from BENCH_REDIS_URL. Jobs keep BullMQ's defaults: every job's hash (data,
// return value, timestamps) stays in Redis after it completes, as jobplatform keeps its
// row. Prints one JSON line.
import { Queue, Worker } from "bullmq";

const args = Object.fromEntries(
  process.argv.slice(3).reduce((pairs, value, i, all) => {
    if (i % 2 === 0) pairs.push([all[i].replace(/^--/, ""), all[i + 1]]);
    return pairs;
  }, []),
);
const mode = process.argv[2];
const jobs = Number(args.jobs ?? 10000);
const concurrency = Number(args.concurrency ?? 10);
const url = new URL(process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379/14");
const connection = {
  host: url.hostname,
  port: Number(url.port || 6379),
  db: Number(url.pathname.slice(1) || 0),
  maxRetriesPerRequest: null,
};
const name = `bench-${mode}`;

async function addAll(queue, count) {
  for (let start = 0; start < count; start += 1000) {
    const batch = [];
    for (let i = start; i < Math.min(start + 1000, count); i++) {
      batch.push({ name: "noop", data: { i } });
    }
    await queue.addBulk(batch);
  }
}

async function drain(work) {
  const queue = new Queue(name, { connection });
  await queue.obliterate({ force: true });
  await addAll(queue, jobs);
  let done = 0;
  let t0;
  const finished = new Promise((resolve) => {
    const worker = new Worker(name, work, { connection, concurrency, autorun: false });
    worker.on("completed", () => {
      done += 1;
      if (done === jobs) resolve(worker);
    });
    worker.on("failed", (job, err) => {
      console.error(`job ${job?.id} failed: ${err}`);
      process.exit(1);
    });
    worker.waitUntilReady().then(() => {
      t0 = performance.now();
      worker.run();
    });
  });
  const worker = await finished;
  const seconds = (performance.now() - t0) / 1000;
  const rss = process.memoryUsage().rss;
  await worker.close();
  const kept = await queue.getJobCountByTypes("completed");
  await queue.obliterate({ force: true });
  await queue.close();
  return {
    jobs,
    concurrency,
    seconds: Number(seconds.toFixed(3)),
    per_second: Number((jobs / seconds).toFixed(1)),
    completed_kept: kept,
    rss_mb: Number((rss / 2 ** 20).toFixed(1)),
  };
}

async function enqueue() {
  const queue = new Queue(name, { connection });
  await queue.obliterate({ force: true });
  const single = Math.min(jobs, 3000);
  let t0 = performance.now();
  for (let i = 0; i < single; i++) await queue.add("noop", { i });
  const singleRate = single / ((performance.now() - t0) / 1000);
  await queue.obliterate({ force: true });
  const bulk = jobs * 4;
  t0 = performance.now();
  await addAll(queue, bulk);
  const bulkRate = bulk / ((performance.now() - t0) / 1000);
  await queue.obliterate({ force: true });
  await queue.close();
  return { single: Math.round(singleRate), bulk: Math.round(bulkRate) };
}

let out;
if (mode === "drain") {
  out = await drain(async () => null);
} else if (mode === "io") {
  out = await drain(async () => {
    const response = await fetch(args.url);
    await response.text();
    return null;
  });
} else if (mode === "enqueue") {
  out = await enqueue();
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
console.log(JSON.stringify({ scenario: `bullmq-${mode}`, ...out }));
process.exit(0);
