/**
 * The agent's command policy: `--deny` rules always win; when any `--allow`
 * rule is given, a command must match one. Rules are regular expressions
 * searched anywhere in the command line (anchor them with ^ and $).
 */
export interface CommandPolicy {
  allow: readonly RegExp[];
  deny: readonly RegExp[];
}

export type PolicyVerdict = { allowed: true } | { allowed: false; reason: string };

export function compilePolicy(allow: readonly string[], deny: readonly string[]): CommandPolicy {
  const compile = (flag: string) => (source: string) => {
    try {
      return new RegExp(source);
    } catch (err) {
      throw new Error(
        `${flag} ${JSON.stringify(source)} is not a valid regular expression: ${(err as Error).message}`,
      );
    }
  };
  return { allow: allow.map(compile('--allow')), deny: deny.map(compile('--deny')) };
}

export function checkCommand(policy: CommandPolicy, command: string): PolicyVerdict {
  const denied = policy.deny.find((rule) => rule.test(command));
  if (denied)
    return {
      allowed: false,
      reason: `refused by the agent's rule --deny ${JSON.stringify(denied.source)}`,
    };
  if (policy.allow.length > 0 && !policy.allow.some((rule) => rule.test(command))) {
    const rules = policy.allow.map((r) => JSON.stringify(r.source)).join(', ');
    return {
      allowed: false,
      reason: `refused: the command matches none of the agent's --allow rules (${rules})`,
    };
  }
  return { allowed: true };
}
