// esbuild bundles the stylesheet that main.tsx imports (build.ts).
declare module "*.css";
