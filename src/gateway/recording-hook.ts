/**
 * What the relays need of session recording (docs/gateway.md, "Recording"). The recorder
 * itself is src/audit/recording.ts (another part of issue 13); until it is on main this
 * declares its interface, and the relay records through whatever store the gateway was given.
 */

/** One recorded terminal session (asciicast v2). */
export interface TerminalRecording {
  readonly id: string;
  output(chunk: Buffer): void;
  input(chunk: Buffer): void;
  resize(cols: number, rows: number): void;
  end(): Promise<{ id: string; sha256: string; bytes: number; durationMs: number }>;
}

export interface RecordingInfo {
  id: string;
  operator: string;
  host: string;
  as: string;
  startedAt: string;
  durationMs: number | null;
  bytes: number;
  sha256: string | null;
}

export interface RecordingStore {
  startTerminal(meta: {
    operator: string; host: string; as: string; command: string | null;
    cols: number; rows: number; term: string; recordInput: boolean;
  }): TerminalRecording;
  list(filter?: { operator?: string }): RecordingInfo[];
  open(id: string): { info: RecordingInfo; path: string };
  prune(retentionDays: number): number;
}
