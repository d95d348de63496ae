/**
 * `shellwire/audit`: read and verify a daemon's hash-chained audit log (docs/audit.md).
 *
 *   import { AuditLog, auditLogPath } from 'shellwire/audit';
 *   const log = AuditLog.open(auditLogPath('/var/lib/shellwire'), { readonly: true });
 *   const { ok } = log.verify();
 */
export { AuditLog, auditLogPath, AUDIT_KINDS, GENESIS_HASH, type AuditLogOptions } from './audit-log.js';
export type { AuditEvent, AuditRow, AuditKind, AuditGap, AuditProblem, VerifyResult } from './audit-log.js';
export type { AuditQuery } from './audit-query.js';
/** What `ServerOptions.audit` takes: one door, `record(event)`, plus an optional `admit()` asked before each channel. */
export type { AuditSink, AuditRefusal } from './audit-sink.js';
/** The gateway's recordings: asciicast v2 terminal sessions and exec output, and their check against the audit rows (docs/gateway.md). */
export { FileRecordingStore, recordingsDir, DEFAULT_RECORDING_RETENTION_DAYS, type RecordingStore, type RecordingStoreOptions, type TerminalRecording, type ExecOutputRecording, type RecordingInfo, type RecordingResult, type TerminalMeta, type ExecOutputMeta } from './recording.js';
export { verifyRecordings, type RecordingsVerifyResult, type RecordingProblem } from './recording-verify.js';
export { parseCast, playbackSchedule, type CastHeader, type CastEvent, type ParsedCast, type PlaybackStep } from './asciicast.js';
export { readExecOutput } from './exec-output.js';
