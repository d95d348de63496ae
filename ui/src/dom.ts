/**
 * A tiny element builder: `h('button', { class: 'x', onclick }, 'text')`. Text children become
 * text nodes (never HTML), so host names, output and audit fields cannot inject markup; their
 * control and bidi characters are shown as escapes (visible-text.ts `visible`), as are those of
 * `title` and `aria-label` (a tooltip reorders text as well). A command's output goes in as a
 * Text node of its own (`outputNode`). `data-*` attributes keep the exact text (tests and
 * code read them back).
 */
import { outputText, visible } from './visible-text';

export type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, ''), value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, name === 'title' || name === 'aria-label' ? visible(String(value)) : String(value));
  }
  append(el, ...children);
  return el;
}

export function append(el: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(typeof child === 'object' ? child : document.createTextNode(visible(String(child))));
  }
}

/** `el`'s text, made visible as `h` does (for status lines and messages set after creation). */
export function setText(el: Element, text: string): void {
  el.textContent = visible(text);
}

/** A command's output as a text node: controls escaped, its own (bidi) text kept; the element holding it isolates it. */
export function outputNode(text: string, binary = false): Text {
  return document.createTextNode(outputText(text, binary));
}

/** Replace every child of `el`. */
export function replaceChildren(el: Element, ...children: Child[]): void {
  el.textContent = '';
  append(el, ...children);
}

/** Base64 → bytes (atob gives one char per byte). */
export function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });
/** Output bytes for display: UTF-8 with U+FFFD for what is not (the bytes themselves stay as they came). */
export function displayText(bytes: Uint8Array): string {
  return utf8.decode(bytes);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** A local, readable time for an ISO string (the ISO text stays in the title). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
