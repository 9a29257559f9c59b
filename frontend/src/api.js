// Talking to the spikeserve API: the key lives in sessionStorage and goes in every request.

const KEY_STORAGE = "spikeserve.key";

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

export async function api(path, { method = "GET", body, raw = false, signal } = {}) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}), signal };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const response = await fetch(`/api/v1${path}`, init);
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail;
    } catch {
      /* not JSON: keep the status text */
    }
    throw new ApiError(response.status, detail);
  }
  if (raw) return response;
  return response.json();
}

// Server-Sent Events through fetch, because EventSource cannot send an Authorization header.
// `onEvent` gets each status event, `onSpikes` each chunk of live spikes (record.live).
export function followEvents(jobId, onEvent, signal, onSpikes = () => {}) {
  return followStream(`/jobs/${jobId}/events`, onEvent, signal, onSpikes);
}

// Any of the API's event streams (a job's, a sweep's), by its path under /api/v1.
export async function followStream(path, onEvent, signal, onSpikes = () => {}) {
  const response = await fetch(`/api/v1${path}`, { headers: headers(), signal });
  if (!response.ok) throw new ApiError(response.status, response.statusText);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim());
      const kind = block.split("\n").find((line) => line.startsWith("event:"));
      const type = kind?.slice(6).trim();
      if (data.length && type === "status") onEvent(JSON.parse(data.join("\n")));
      else if (data.length && type === "spikes") onSpikes(JSON.parse(data.join("\n")));
    }
  }
}
