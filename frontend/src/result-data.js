// The page's side of result-worker.js: every request is a message, every answer a promise.

// Up to this many spikes in view, the raster draws each as a mark; above, each pixel shows how
// many spikes fall in it (a density image: the more spikes, the stronger the colour).
export const MARKS_UP_TO = 150_000;

export class ResultData {
  constructor() {
    this.worker = new Worker(new URL("./result-worker.js", import.meta.url), { type: "module" });
    this.pending = new Map();
    this.next = 1;
    this.worker.onmessage = ({ data }) => {
      const waiting = this.pending.get(data.id);
      this.pending.delete(data.id);
      if (!waiting) return;
      if (data.error) waiting.reject(Object.assign(new Error(data.error.message), { status: data.error.status }));
      else waiting.resolve(data.answer);
    };
    this.worker.onerror = (event) => {
      for (const waiting of this.pending.values()) waiting.reject(new Error(`the result worker failed: ${event.message}`));
      this.pending.clear();
    };
  }

  call(type, payload = {}, transfer = []) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, ...payload }, transfer);
    });
  }
}
