// The dashboard's style: one column on a phone, a grid from tablet width; visible focus.

export const PAGE_CSS = `
:root { --bg: #f6f7f9; --fg: #1c2430; --muted: #566070; --card: #fff; --line: #d5dae1; --accent: #1f5fbf; --warn: #8a5a00; --warnbg: #fff4d6; --err: #a4161a; --errbg: #fde7e7; --ok: #1b7a3a; --shade: rgba(230, 140, 0, 0.18); }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
.skip { position: absolute; left: -999px; top: 0; background: var(--card); padding: 8px; }
.skip:focus { left: 8px; z-index: 10; }
header { background: #14213d; color: #fff; padding: 12px 16px; }
header h1 { margin: 0 0 6px; font-size: 1.25rem; display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
.brand { font-weight: 700; }
.badge { font-size: .85rem; padding: 2px 10px; border-radius: 999px; background: #e9eef7; color: #14213d; }
.badge.failed, .badge.aborted { background: var(--errbg); color: var(--err); }
.badge.done { background: #dff3e6; color: var(--ok); }
.badge.throttled { background: var(--warnbg); color: var(--warn); }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 0; font-size: .9rem; }
.meta dt { color: #b9c4d6; } .meta dd { margin: 0; overflow-wrap: anywhere; }
main { display: grid; gap: 12px; padding: 12px; grid-template-columns: minmax(0, 1fr); }
@media (min-width: 900px) { main { grid-template-columns: repeat(2, minmax(0, 1fr)); } #charts, #logs { grid-column: 1 / -1; } }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
h2 { margin: 0 0 8px; font-size: 1.05rem; } h3 { font-size: .95rem; margin: 12px 0 4px; }
.note { color: var(--muted); font-size: .88rem; margin: 4px 0; }
.big { font-size: 1.2rem; font-weight: 600; margin: 6px 0; }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0 0; }
.kv dt { color: var(--muted); } .kv dd { margin: 0; overflow-wrap: anywhere; }
.chips { list-style: none; padding: 0; margin: 6px 0 0; display: flex; flex-wrap: wrap; gap: 6px; }
.chips li { background: #eef1f5; border-radius: 6px; padding: 2px 8px; font-size: .88rem; }
.chips li.current { background: #dbe7fb; font-weight: 600; }
progress { width: 100%; height: 18px; }
.warn { background: var(--warnbg); color: var(--warn); padding: 6px 8px; border-radius: 6px; }
.charts { display: grid; gap: 12px; grid-template-columns: minmax(0, 1fr); }
@media (min-width: 700px) { .charts { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
figure { margin: 0; } figcaption { font-size: .9rem; color: var(--muted); }
svg { width: 100%; height: 170px; display: block; background: #fbfcfd; border: 1px solid var(--line); border-radius: 6px; }
svg text { font-size: 11px; fill: var(--muted); }
svg .grid { stroke: #e3e7ec; } svg .shade { fill: var(--shade); } svg .line { fill: none; stroke-width: 2; }
.legend { font-size: .85rem; display: flex; flex-wrap: wrap; gap: 10px; margin-top: 2px; }
.legend span::before { content: ""; display: inline-block; width: 12px; height: 3px; margin-right: 4px; vertical-align: middle; background: currentColor; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
caption { text-align: left; color: var(--muted); font-size: .88rem; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); }
.buttons { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; }
button, select, input { font: inherit; min-height: 40px; }
button { background: var(--accent); color: #fff; border: 1px solid var(--accent); border-radius: 6px; padding: 6px 14px; cursor: pointer; }
button.danger { background: var(--err); border-color: var(--err); }
button[aria-disabled="true"] { opacity: .6; }
input, select { border: 1px solid #8a94a3; border-radius: 6px; padding: 6px 8px; background: #fff; color: var(--fg); max-width: 100%; }
form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 8px 0; }
label { font-weight: 600; }
:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.log { list-style: none; margin: 0; padding: 0; font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; max-height: 360px; overflow: auto; }
.log li { padding: 3px 6px; border-bottom: 1px solid #eef0f3; overflow-wrap: anywhere; }
.log li.warn { background: var(--warnbg); color: var(--warn); }
.log li.error { background: var(--errbg); color: var(--err); font-weight: 600; }
.refused { color: var(--err); } .accepted { color: var(--ok); }
footer { padding: 0 16px 16px; }
`;
