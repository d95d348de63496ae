/**
 * Target chips: `@group`, `label=value` and "picked hosts" buttons under a target input; a
 * click adds the selection to the expression (`,` is union, as on the command line).
 */
import { h, replaceChildren } from './dom';
import { oneLine } from './visible-text';
import { hostsStore } from './hosts-store';

export interface Chips {
  el: HTMLElement;
  /** Redraw (the picks may have changed on the hosts page). */
  refresh(): void;
}

export function targetChips(input: HTMLInputElement): Chips {
  const box = h('div', { class: 'chips', 'aria-label': 'Add to the targets' });
  const add = (text: string) => {
    const current = input.value.trim();
    const items = current ? current.split(',').map((s) => s.trim()) : [];
    if (!items.includes(text)) input.value = current ? `${current},${text}` : text;
    input.dispatchEvent(new Event('input'));
    input.focus();
  };
  const render = () => {
    const chips: HTMLElement[] = [];
    if (hostsStore.picked.size > 0) {
      chips.push(h('button', { type: 'button', class: 'chip picked', title: 'Replace the targets with the hosts picked on the hosts page', onclick: () => { input.value = hostsStore.pickedTargets(); input.focus(); } }, `picked (${hostsStore.picked.size})`));
    }
    chips.push(h('button', { type: 'button', class: 'chip', onclick: () => add('@all') }, '@all'));
    for (const g of hostsStore.groups()) chips.push(h('button', { type: 'button', class: 'chip', onclick: () => add(`@${g}`) }, `@${oneLine(g)}`));
    for (const l of hostsStore.labels()) chips.push(h('button', { type: 'button', class: 'chip label', onclick: () => add(l) }, oneLine(l)));
    replaceChildren(box, ...chips);
  };
  hostsStore.subscribe(render);
  render();
  return { el: box, refresh: render };
}

/**
 * Fill `input` with the picked hosts when it is empty or still holds what was filled in last
 * time (the user's own edits are kept).
 */
export function prefillTargets(input: HTMLInputElement, last: { value: string }): void {
  const picked = hostsStore.pickedTargets();
  if (picked && (input.value.trim() === '' || input.value === last.value)) {
    input.value = picked;
    last.value = picked;
  }
}
