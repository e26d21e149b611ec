import { CelScalar, type CelValue, celEnv, celFunc, celType, isCelError, parse, plan } from "@bufbuild/cel";

// Webhook filters: a CEL expression over the notification (`event.type`, `event.data.*`, …) that
// decides whether a webhook gets a delivery of an event. The operator compiles it to validate a
// Webhook (Ready=False/InvalidFilter with this module's message); the dispatcher compiles it once
// per routing revision and evaluates it at fan-out. Both must agree on what compiles, so the
// rules live here, in the contract.
//
// Hostile expressions are bounded before and while they run:
// - length (MAX_FILTER_LENGTH, also the CRD's maxLength) and bracket nesting (MAX_FILTER_NESTING,
//   checked before parsing: the parser recurses per bracket and overflows the stack near 500);
// - the parsed tree's depth (MAX_FILTER_DEPTH: evaluation recurses per level);
// - only the variable `event` and the standard functions: anything else is refused when compiled,
//   not discovered per event;
// - at run time, iterations of the comprehension macros (`all`, `exists`, `exists_one`, `map`,
//   `filter`), nested ones included, count against FILTER_ITERATION_BUDGET per evaluation, and a
//   wall-clock backstop (FILTER_TIME_BUDGET_MS) is checked at every iteration. Everything else
//   costs at most the expression's size times the data's (≤ the ingest limit).

/** Characters of an expression (the CRD's maxLength too). */
export const MAX_FILTER_LENGTH = 1024;
/** Nesting of (), [] and {} in the source. */
export const MAX_FILTER_NESTING = 32;
/** Depth of the parsed expression tree (a chain `a || b || …` is as deep as it is long). */
export const MAX_FILTER_DEPTH = 100;
/** Comprehension iterations (all macros, nested ones multiply) in one evaluation. */
export const FILTER_ITERATION_BUDGET = 1_000;
/**
 * Wall-clock backstop of one evaluation, checked at every comprehension iteration: for
 * expressions whose single iterations are expensive (concatenating the data in a loop). Generous,
 * because time is not deterministic (a GC pause, a busy machine): the iteration budget is the
 * limit ordinary filters meet, and the same event then gets the same verdict on every replica.
 */
export const FILTER_TIME_BUDGET_MS = 250;

/** The one variable a filter sees. */
export const FILTER_VARIABLE = "event";

/** What `event` holds: the notification's fields, as the receiver gets them (webhook name aside). */
export interface FilterEvent {
  id: string;
  type: string;
  /** `occurredAt`, ISO 8601: the body's `timestamp` */
  timestamp: string;
  namespace: string;
  /** The producer's `data`, parsed (numbers are CEL doubles, as in CEL's JSON mapping). */
  data: unknown;
}

export type FilterOutcome =
  | { matched: true }
  | { matched: false; reason: "no-match" }
  /** The expression failed on this event (a missing field, a type mismatch, not a bool). */
  | { matched: false; reason: "error"; message: string }
  /** The expression ran over its iteration or time budget. */
  | { matched: false; reason: "limit"; message: string };

export interface CompiledFilter {
  readonly source: string;
  evaluate(event: FilterEvent): FilterOutcome;
}

/** An expression that does not compile; `message` says why, in the compiler's words. */
export class FilterCompileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FilterCompileError";
  }
}

type ParsedExpr = ReturnType<typeof parse>;
type Expr = ParsedExpr["expr"];
type Comprehension = Extract<Expr["exprKind"], { case: "comprehensionExpr" }>["value"];

/** Name of the budget check woven into every comprehension; `@` keeps it out of users' reach. */
const BUDGET_FUNCTION = "@filter_budget";

/** Standard functions (and operators) a filter may call; macros are expanded by the parser. */
const STANDARD_FUNCTIONS: ReadonlySet<string> = new Set([...celEnv().funcs].map((func) => func.name));
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface Budget {
  iterations: number;
  deadline: number;
  exceeded: string | undefined;
}

/** Compiles a filter expression, or throws FilterCompileError with the reason. */
export function compileFilter(source: string): CompiledFilter {
  if (source.length > MAX_FILTER_LENGTH) {
    throw new FilterCompileError(`the expression is longer than ${MAX_FILTER_LENGTH} characters`);
  }
  if (source.trim() === "") throw new FilterCompileError("the expression is empty");
  const nesting = bracketNesting(source);
  if (nesting > MAX_FILTER_NESTING) {
    throw new FilterCompileError(
      `the expression nests brackets ${nesting} deep; at most ${MAX_FILTER_NESTING} are allowed`,
    );
  }
  let parsed: ParsedExpr;
  try {
    parsed = parse(source);
  } catch (error) {
    throw new FilterCompileError(`syntax error: ${parseMessage(error)}`);
  }
  const nextId = checkTree(parsed.expr);
  const budget: Budget = { iterations: 0, deadline: 0, exceeded: undefined };
  instrumentComprehensions(parsed.expr, nextId);
  const env = celEnv({
    funcs: [
      celFunc(BUDGET_FUNCTION, [], CelScalar.BOOL, () => {
        budget.iterations += 1;
        if (budget.iterations > FILTER_ITERATION_BUDGET) {
          budget.exceeded = `more than ${FILTER_ITERATION_BUDGET} iterations`;
        } else if (performance.now() > budget.deadline) {
          budget.exceeded = `longer than ${FILTER_TIME_BUDGET_MS} ms`;
        }
        if (budget.exceeded) throw new Error(`filter budget exceeded: ${budget.exceeded}`);
        return true;
      }),
    ],
  });
  let program: ReturnType<typeof plan>;
  try {
    program = plan(env, parsed);
  } catch (error) {
    throw new FilterCompileError(parseMessage(error));
  }
  return {
    source,
    evaluate(event: FilterEvent): FilterOutcome {
      budget.iterations = 0;
      budget.exceeded = undefined;
      budget.deadline = performance.now() + FILTER_TIME_BUDGET_MS;
      let result: CelValue | Error;
      try {
        result = program({ [FILTER_VARIABLE]: event as never });
      } catch (error) {
        // the evaluator returns errors as values; a throw is a bug or a stack overflow
        result = error instanceof Error ? error : new Error(String(error));
      }
      if (budget.exceeded) {
        return {
          matched: false,
          reason: "limit",
          message: `the filter ran over its budget (${budget.exceeded})`,
        };
      }
      if (isCelError(result) || result instanceof Error) {
        return { matched: false, reason: "error", message: result.message };
      }
      if (typeof result !== "boolean") {
        return {
          matched: false,
          reason: "error",
          message: `the filter evaluated to a ${celType(result).name}, not a bool`,
        };
      }
      return result ? { matched: true } : { matched: false, reason: "no-match" };
    },
  };
}

const checked = new Map<string, string | undefined>();
const CHECKED_MAX = 1_000;

/**
 * The compile error of an expression, or undefined when it compiles: the operator's check, run
 * at every reconcile of a namespace, so verdicts are remembered (up to CHECKED_MAX expressions).
 */
export function filterError(source: string): string | undefined {
  if (checked.has(source)) return checked.get(source);
  let error: string | undefined;
  try {
    compileFilter(source);
  } catch (thrown) {
    if (!(thrown instanceof FilterCompileError)) throw thrown;
    error = thrown.message;
  }
  if (checked.size >= CHECKED_MAX) checked.clear();
  checked.set(source, error);
  return error;
}

/** The deepest nesting of (), [] and {} outside string literals. */
function bracketNesting(source: string): number {
  let depth = 0;
  let deepest = 0;
  let quote: string | undefined;
  for (let i = 0; i < source.length; i++) {
    const char = source[i]!;
    if (quote !== undefined) {
      if (char === "\\") i++;
      else if (char === quote) quote = undefined;
      continue;
    }
    if (char === '"' || char === "'") quote = char;
    else if (char === "(" || char === "[" || char === "{") deepest = Math.max(deepest, ++depth);
    else if (char === ")" || char === "]" || char === "}") depth = Math.max(0, depth - 1);
  }
  return deepest;
}

function parseMessage(error: unknown): string {
  if (error instanceof RangeError) return "the expression is nested too deeply";
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^<input>:/, "at ");
}

/**
 * Walks the tree (without recursion): its depth, the identifiers it reads and the functions it
 * calls. Returns an expression id above every one in use.
 */
function checkTree(root: Expr): bigint {
  const stack: Array<{ expr: Expr; depth: number; scope: ReadonlySet<string> }> = [
    { expr: root, depth: 1, scope: new Set([FILTER_VARIABLE]) },
  ];
  let maxId = 0n;
  while (stack.length > 0) {
    const { expr, depth, scope } = stack.pop()!;
    if (expr.id > maxId) maxId = expr.id;
    if (depth > MAX_FILTER_DEPTH) {
      throw new FilterCompileError(`the expression is nested more than ${MAX_FILTER_DEPTH} levels deep`);
    }
    const push = (child: Expr | undefined, childScope = scope) => {
      if (child) stack.push({ expr: child, depth: depth + 1, scope: childScope });
    };
    const kind = expr.exprKind;
    switch (kind.case) {
      case "identExpr":
        if (!scope.has(kind.value.name)) {
          throw new FilterCompileError(
            `undeclared reference to '${kind.value.name}': a filter reads only '${FILTER_VARIABLE}' (event.type, event.data.…)`,
          );
        }
        break;
      case "selectExpr":
        push(kind.value.operand);
        break;
      case "callExpr":
        if (IDENTIFIER.test(kind.value.function) && !STANDARD_FUNCTIONS.has(kind.value.function)) {
          throw new FilterCompileError(`undeclared function '${kind.value.function}'`);
        }
        push(kind.value.target);
        for (const arg of kind.value.args) push(arg);
        break;
      case "listExpr":
        for (const element of kind.value.elements) push(element);
        break;
      case "structExpr":
        if (kind.value.messageName !== "") {
          throw new FilterCompileError(`unknown type '${kind.value.messageName}'`);
        }
        for (const entry of kind.value.entries) {
          if (entry.keyKind.case === "mapKey") push(entry.keyKind.value);
          push(entry.value);
        }
        break;
      case "comprehensionExpr": {
        const inner = new Set([...scope, kind.value.iterVar, kind.value.iterVar2, kind.value.accuVar]);
        push(kind.value.iterRange);
        push(kind.value.accuInit, new Set([...scope, kind.value.accuVar]));
        push(kind.value.loopCondition, inner);
        push(kind.value.loopStep, inner);
        push(kind.value.result, new Set([...scope, kind.value.accuVar]));
        break;
      }
      case "constExpr":
        break;
      default:
        throw new FilterCompileError("unsupported expression");
    }
  }
  return maxId + 1n;
}

/**
 * Makes every comprehension check the budget before each iteration: its loop condition `c`
 * becomes `@filter_budget() ? c : false`. Over budget, the check fails, the comprehension stops
 * at once with that error, and the evaluation reports the limit whatever the rest made of it.
 */
function instrumentComprehensions(root: Expr, firstId: bigint): void {
  let nextId = firstId;
  const id = () => nextId++;
  const stack: Expr[] = [root];
  while (stack.length > 0) {
    const expr = stack.pop()!;
    const kind = expr.exprKind;
    switch (kind.case) {
      case "selectExpr":
        if (kind.value.operand) stack.push(kind.value.operand);
        break;
      case "callExpr":
        if (kind.value.target) stack.push(kind.value.target);
        stack.push(...kind.value.args);
        break;
      case "listExpr":
        stack.push(...kind.value.elements);
        break;
      case "structExpr":
        for (const entry of kind.value.entries) {
          if (entry.keyKind.case === "mapKey") stack.push(entry.keyKind.value);
          if (entry.value) stack.push(entry.value);
        }
        break;
      case "comprehensionExpr":
        for (const child of comprehensionParts(kind.value)) stack.push(child);
        kind.value.loopCondition = budgeted(kind.value.loopCondition, id);
        break;
      default:
        break;
    }
  }
}

function comprehensionParts(comprehension: Comprehension): Expr[] {
  const { iterRange, accuInit, loopCondition, loopStep, result } = comprehension;
  return [iterRange, accuInit, loopCondition, loopStep, result].filter((e): e is Expr => e !== undefined);
}

function budgeted(condition: Expr | undefined, id: () => bigint): Expr {
  const call = (fn: string, args: Expr[]): Expr => ({
    $typeName: "cel.expr.Expr",
    id: id(),
    exprKind: { case: "callExpr", value: { $typeName: "cel.expr.Expr.Call", function: fn, args } },
  });
  const constant = (value: boolean): Expr => ({
    $typeName: "cel.expr.Expr",
    id: id(),
    exprKind: {
      case: "constExpr",
      value: { $typeName: "cel.expr.Constant", constantKind: { case: "boolValue", value } },
    },
  });
  return call("_?_:_", [call(BUDGET_FUNCTION, []), condition ?? constant(true), constant(false)]);
}
