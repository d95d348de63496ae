/** What every page of the console is: one element, kept while the user moves between pages. */
export interface View {
  readonly el: HTMLElement;
  /** The page became visible; `arg` is the rest of the route (`#/terminal/web01` → `web01`). */
  show(arg: string | null): void;
  /** The page is being hidden (another route). */
  hide?(): void;
}
