import { setSourceMapsSupport } from "node:module";

// The operator process's entry point. Stack traces through the compiled code point at the TypeScript
// source, using our own source maps only: `node --enable-source-maps` would also parse and keep
// those of every package (client-node's alone hold ~10 MB of heap, measured). Static imports are
// loaded before a module's first line runs, hence the dynamic import after the switch.
setSourceMapsSupport(true, { nodeModules: false });
const { runOperator } = await import("./run.ts");
await runOperator();
