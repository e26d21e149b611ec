import { CopyButton } from "./copy-button.tsx";

/** kubectl commands for the same view, to copy. */
export function Commands({ commands }: { commands: string[] }) {
  return (
    <details class="commands">
      <summary>The same with kubectl</summary>
      <pre>{commands.join("\n")}</pre>
      <CopyButton text={commands.join("\n")} label="Copy commands" />
    </details>
  );
}
