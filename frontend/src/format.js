// How the viewer writes durations (whole units once they are over ten seconds, and never "60 s")
// and field paths.

export function formatSeconds(seconds) {
  if (seconds == null) return "–";
  if (seconds < 0.9995) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 9.95) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds); // rounded once, then split: 179.6 s is "3 min 0 s", not "2 min 60 s"
  return whole < 60 ? `${whole} s` : `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

// A field path as the server's messages write it: ["network", "layers", 1, "type"] is
// network.layers[1].type.
export function formatLoc(loc) {
  return loc.reduce((path, part) => (typeof part === "number" ? `${path}[${part}]` : path ? `${path}.${part}` : part), "");
}
