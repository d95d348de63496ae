/**
 * Reading `shellwire shell` input the way a shell does: a command may go on over several
 * lines (an open quote, a trailing backslash or `|`/`&&`/`||`, an `if`/`for`/`while`/`case`
 * or `{`/`(` not yet closed, a here-document not yet ended), and `exit [N]` is ours.
 *
 * This is a scanner, not a parser: it only has to tell "surely unfinished" from "send it".
 * Anything it cannot place (a stray `fi`, odd syntax) counts as finished, so the remote
 * shell reports the error in its own words rather than the prompt waiting forever.
 */

/** Reserved words that open a construct, and the word that closes it. */
const OPENERS: Record<string, string> = { if: 'fi', case: 'esac', for: 'done', while: 'done', until: 'done', select: 'done', '{': '}' };
const CLOSERS = new Set(['fi', 'esac', 'done', '}']);
/** After these words the next word is again in command position (`then echo`, `do done`). */
const LEADERS = new Set(['then', 'do', 'else', 'elif', 'if', 'while', 'until', '{', '!', 'time']);

/** True when `text` (lines joined with "\n") is a whole command the shell can run. */
export function isCompleteCommand(text: string): boolean {
  const stack: string[] = [];
  const heredocs: { word: string; stripTabs: boolean }[] = [];
  let quote: '' | "'" | '"' | '`' = '';
  let word = '';
  let commandPosition = true;
  let caseWords = 0; // words since `case`: `case WORD in` puts `in` out of command position
  let tail = ''; // the last operator outside quotes, to see a trailing `|`, `&&` or `||`

  const endWord = () => {
    if (word === '') return;
    if (caseWords > 0) {
      caseWords = caseWords === 2 ? 0 : caseWords + 1;
    } else if (commandPosition && word in OPENERS) {
      stack.push(OPENERS[word]!);
      if (word === 'case') caseWords = 1;
    } else if (commandPosition && CLOSERS.has(word) && stack.at(-1) === word) {
      stack.pop();
    }
    commandPosition = LEADERS.has(word) && commandPosition;
    tail = '';
    word = '';
  };

  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!;
    // Here-document bodies: whole lines up to the delimiter.
    if (heredocs.length > 0 && quote === '') {
      const doc = heredocs[0]!;
      if ((doc.stripTabs ? line.replace(/^\t+/, '') : line) === doc.word) heredocs.shift();
      continue;
    }
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (quote === "'") {
        if (c === "'") quote = '';
        continue;
      }
      if (c === '\\') {
        if (i === line.length - 1) {
          if (n === lines.length - 1) return false; // a continued line, and nothing after it yet
          break; // the newline is escaped: the word goes on on the next line
        }
        word += c + line[i + 1]!;
        i += 1;
        continue;
      }
      if (quote === '"' || quote === '`') {
        if (c === quote) quote = '';
        continue;
      }
      if (c === "'" || c === '"' || c === '`') {
        quote = c;
        word += c;
        continue;
      }
      if (c === '#' && word === '') break; // a comment runs to the end of the line
      if (c === '<' && line[i + 1] === '<' && line[i + 2] !== '<' && stack.at(-1) !== '))') {
        endWord();
        const match = /^<<(-?)\s*(['"]?)([^\s;&|<>()'"]+)\2/.exec(line.slice(i));
        if (match) {
          heredocs.push({ word: match[3]!, stripTabs: match[1] === '-' });
          i += match[0].length - 1;
        }
        continue;
      }
      if (c === ' ' || c === '\t') {
        endWord();
        continue;
      }
      if (c === '(' || c === ')') {
        // `$(` and a subshell open; `((` opens arithmetic (where `<<` is a shift, not a
        // here-document); only a `)` we saw open closes (a case pattern's does not).
        endWord();
        if (c === '(') {
          if (line[i + 1] === '(') {
            stack.push('))');
            i += 1;
          } else stack.push(')');
        } else if (line[i + 1] === ')' && stack.at(-1) === '))') {
          stack.pop();
          i += 1;
        } else if (stack.at(-1) === ')') stack.pop();
        // After `(`, and after `name()` (a function body follows), a command word comes next.
        commandPosition = c === '(' || line[i - 1] === '(';
        tail = '';
        continue;
      }
      if (c === ';' || c === '&' || c === '|') {
        endWord();
        commandPosition = true;
        tail = tail + c;
        continue;
      }
      if (c === '{' || c === '}') {
        // Reserved only as a word of its own in command position (`{ cmd; }`), not in `${x}`.
        const alone = word === '' && !/[^\s;&|]/.test(line[i + 1] ?? ' ');
        if (alone) {
          word = c;
          endWord();
          commandPosition = true;
          continue;
        }
      }
      word += c;
    }
    if (quote !== "'" && quote !== '"' && quote !== '`') {
      endWord();
      // A newline ends a command, unless it follows a pipe or && / ||.
      if (!/(\||&&)$/.test(tail)) tail = '';
      commandPosition = true;
    }
  }
  if (quote !== '' || heredocs.length > 0 || stack.length > 0) return false;
  return !/(\||&&)$/.test(tail);
}

/**
 * `exit`, `exit N` or `logout`: the session ends here. Returns the status (undefined: the
 * last command's), or null when the line is not a plain exit (e.g. `exit $?`, which the
 * remote shell evaluates).
 */
export function parseExit(command: string): { status: number | undefined } | null {
  const match = /^(?:exit|logout)(?:\s+(\d+))?\s*;?$/.exec(command.trim());
  if (!match) return null;
  return { status: match[1] === undefined ? undefined : Number(match[1]) & 0xff };
}

/** Any other line whose first word is `exit` or `logout` (`exit $?`, `exit 3; …`). */
export function startsWithExit(command: string): boolean {
  return /^(?:exit|logout)(?:\s|;|$)/.test(command.trim());
}
