// What a PromQL expression reads: its metric selectors (name and label matchers) and the labels it
// groups or joins by. Enough of PromQL for tests that check alert and dashboard queries against
// the metrics the code exports (test/support/exported-metrics.ts); whether an expression parses at
// all is promtool's job (test/chart/alerts.test.ts, test/chart/grafana-dashboard.test.ts).

export interface Matcher {
  label: string;
  op: "=" | "!=" | "=~" | "!~";
  value: string;
}

export interface Selector {
  metric: string;
  matchers: Matcher[];
}

export interface PromqlUse {
  selectors: Selector[];
  /** Labels of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right` clauses. */
  grouping: string[];
}

const STRING = /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g;
const IDENTIFIER = /[a-zA-Z_:][\w:]*/g;
const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "inf",
  "nan",
  "start",
  "end",
]);

function matchersOf(body: string): Matcher[] {
  return [...body.matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")/g)].map((m) => ({
    label: m[1] ?? "",
    op: m[2] as Matcher["op"],
    value: JSON.parse(m[3] ?? '""') as string,
  }));
}

export function promqlUses(expr: string): PromqlUse {
  const selectors: Selector[] = [];
  // selectors with matchers: name{…}; their strings may hold anything, so read them first
  let rest = expr.replace(/([a-zA-Z_:][\w:]*)?\s*\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\}/g, (_, name, body) => {
    if (name && !KEYWORDS.has(name)) selectors.push({ metric: name, matchers: matchersOf(body) });
    return " ";
  });
  rest = rest.replace(STRING, " ").replace(/\[[^\]]*\]/g, " ");
  const grouping: string[] = [];
  rest = rest.replace(
    /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_, _clause, labels: string) => {
      grouping.push(
        ...labels
          .split(",")
          .map((l) => l.trim())
          .filter(Boolean),
      );
      return " ";
    },
  );
  for (const match of rest.matchAll(IDENTIFIER)) {
    const name = match[0];
    const before = rest[(match.index ?? 0) - 1] ?? " ";
    const after = rest.slice((match.index ?? 0) + name.length).trimStart();
    if (/[\d.$]/.test(before) || after.startsWith("(") || KEYWORDS.has(name)) continue;
    selectors.push({ metric: name, matchers: [] });
  }
  return { selectors, grouping: [...new Set(grouping)] };
}
