import type { z } from "zod";

/**
 * Parses settings from environment variables with a zod schema: `environment` maps each
 * setting to its variable; empty variables count as unset (so defaults apply). Throws one
 * error listing every problem by variable name. Shared by the dispatcher and the operator.
 */
export function settingsFromEnvironment<Schema extends z.ZodType>(
  schema: Schema,
  environment: Readonly<Record<string, string>>,
  env: NodeJS.ProcessEnv,
  processName: string,
): z.output<Schema> {
  const raw: Record<string, string> = {};
  for (const [setting, variable] of Object.entries(environment)) {
    const value = env[variable];
    if (value !== undefined && value !== "") raw[setting] = value;
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const setting = String(issue.path[0] ?? "");
      return `${environment[setting] ?? setting}: ${issue.message}`;
    });
    throw new Error(`invalid ${processName} configuration:\n  ${problems.join("\n  ")}`);
  }
  return result.data;
}
