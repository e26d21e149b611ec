// The operator process's entry point. The image runs it bundled (build/bundle.ts); tests and
// `make dev` run the TypeScript sources directly.
import { runOperator } from "./run.ts";

await runOperator();
