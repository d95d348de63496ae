/**
 * Where a pushed file goes, as scp and cp decide it: a remote path ending in `/` names a
 * directory, and the file goes into it under its own name (`/srv/app/` + `app.tar` →
 * `/srv/app/app.tar`). Sent as such, a trailing `/` could only create a file named after the
 * directory, or fail because the directory exists. Pure: unit-tested.
 */
export function finalPushPath(remote: string, fileName: string): string {
  if (!remote.endsWith('/')) return remote;
  // A browser gives the file's base name; a `/` in it would only come from a hand-made File.
  const base = fileName.replace(/\//g, '_');
  return `${remote}${base}`;
}
