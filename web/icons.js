// Inline SVG icons (no external resources). Each is a 24x24 stroke icon using currentColor.

const wrap = (/** @type {string} */ body) =>
  `<svg viewBox="0 0 24 24" width="24" height="24" fill="none" stroke="currentColor" stroke-width="2" ` +
  `stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">${body}</svg>`;

export const ICONS = {
  mic: wrap('<rect x="9" y="2" width="6" height="12" rx="3"/><path d="M5 10v1a7 7 0 0 0 14 0v-1"/><path d="M12 18v4"/>'),
  micOff: wrap(
    '<path d="M2 2l20 20"/><path d="M9 9v2a3 3 0 0 0 5.1 2.1"/><path d="M15 9.3V5a3 3 0 0 0-5.9-.6"/>' +
      '<path d="M19 10v1a7 7 0 0 1-1.1 3.8"/><path d="M5 10v1a7 7 0 0 0 11.2 5.6"/><path d="M12 18v4"/>',
  ),
  cam: wrap('<rect x="2" y="6" width="14" height="12" rx="2"/><path d="M16 10l6-3v10l-6-3z"/>'),
  camOff: wrap(
    '<path d="M2 2l20 20"/><path d="M16 16v0a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h2"/>' +
      '<path d="M10 6h4a2 2 0 0 1 2 2v3.3l6-3.3v10"/>',
  ),
  people: wrap(
    '<circle cx="9" cy="8" r="3.5"/><path d="M2 20a7 7 0 0 1 14 0"/><circle cx="17" cy="9" r="2.5"/><path d="M17 14a5 5 0 0 1 5 5"/>',
  ),
  leave: wrap(
    '<path d="M3 14.5c5-4.7 13-4.7 18 0l-2.3 2.3a1 1 0 0 1-1.3.1l-2.4-1.7v-2.6a10 10 0 0 0-6 0v2.6l-2.4 1.7a1 1 0 0 1-1.3-.1z"/>',
  ),
  gridView: wrap('<rect x="3" y="3" width="8" height="8" rx="1.5"/><rect x="13" y="3" width="8" height="8" rx="1.5"/><rect x="3" y="13" width="8" height="8" rx="1.5"/><rect x="13" y="13" width="8" height="8" rx="1.5"/>'),
  speakerView: wrap('<rect x="2" y="3" width="20" height="12" rx="2"/><rect x="2" y="17" width="5" height="4" rx="1"/><rect x="9.5" y="17" width="5" height="4" rx="1"/><rect x="17" y="17" width="5" height="4" rx="1"/>'),
  screen: wrap('<rect x="2" y="4" width="20" height="13" rx="2"/><path d="M8 21h8"/><path d="M12 17v4"/><path d="M12 14V8"/><path d="M9 10.5l3-3 3 3"/>'),
  prev: wrap('<path d="M15 6l-6 6 6 6"/>'),
  next: wrap('<path d="M9 6l6 6-6 6"/>'),
};
