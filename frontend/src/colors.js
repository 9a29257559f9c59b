// The populations' colours, in order: the raster's marks (drawn by the result worker), the
// plots' lines and legends, and the matplotlib script all take theirs from here.
export const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];

export const rgbOf = (hex) => [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16));
