/**
 * Agent profiles: what kind of agent a request is for. A profile gives the request its system
 * prompt (its own prompt, the environment and the instruction files), may pick another model,
 * hides tools from the model and adds permission rules.
 *
 * Two ship built in: `build` (the default: every tool, edits and commands under the permission
 * rules) and `plan` (read-only: `write`, `edit` and `bash` are hidden from the model and denied if
 * called anyway). Config adds profiles, or changes the built-in ones, under `agents`:
 *
 * ```jsonc
 * "agents": { "review": { "description": "reviews diffs", "prompt": "…", "model": "openai/gpt-4o",
 *   "tools": { "bash": false }, "permission": [{ "tool": "webfetch", "action": "deny" }] } }
 * ```
 *
 * Which profile an activity runs with is recorded in its `activity.opened` (actors/session.ts), so
 * every owner process applies the same one.
 */
import type { PermissionRule } from '../tools/permission.js';
import type { ToolSpec } from '../tools/registry.js';
import type { AgentConfig, ResolvedConfig } from './config.js';
import { discoverInstructions, renderInstructions } from './instructions.js';

export interface AgentProfile {
  name: string;
  description: string;
  /** The profile's own part of the system prompt. */
  prompt: string;
  /** `provider/model` for its requests; the session's model when absent. */
  model?: string;
  /** Tool switches: a tool set to false is hidden from the model and denied if called anyway. */
  tools: Readonly<Record<string, boolean>>;
  /** Permission rules applied after the config's (last match wins, so these win). */
  permission: readonly PermissionRule[];
  builtin: boolean;
}

/** The profile of a session, input or run that names none. */
export const DEFAULT_AGENT = 'build';

const BASE_PROMPT = [
  "You are Loom, a coding agent working in a user's project.",
  'Use the tools to look at the project before answering questions about it, and to make the changes asked for.',
  'File tools take paths relative to the working directory and cannot leave it. Be concise.',
].join('\n');

const READ_ONLY_TOOLS = ['write', 'edit', 'bash'] as const;

export const BUILTIN_AGENTS: Readonly<Record<string, AgentProfile>> = {
  build: {
    name: 'build',
    description: 'the default: works on the project with every tool (edits and commands follow the permission rules)',
    prompt: BASE_PROMPT,
    tools: {},
    permission: [],
    builtin: true,
  },
  plan: {
    name: 'plan',
    description: 'read-only: looks at the project and plans; cannot write, edit or run commands',
    prompt: [
      BASE_PROMPT,
      'You are in plan mode: read-only. You cannot write or edit files or run commands; those tools are not available.',
      'Study the project with the read-only tools and answer with a concrete plan: the files to change, how, and in what order.',
    ].join('\n'),
    tools: Object.fromEntries(READ_ONLY_TOOLS.map((t) => [t, false])),
    permission: READ_ONLY_TOOLS.map((tool) => ({ tool, action: 'deny' as const })),
    builtin: true,
  },
};

/** An agent name that no built-in profile and no config entry defines. */
export class UnknownAgentError extends Error {
  override name = 'UnknownAgentError';
  constructor(
    readonly agent: string,
    readonly available: readonly string[],
  ) {
    super(`unknown agent "${agent}": the agents defined are ${available.join(', ')} (add one under "agents" in config.jsonc)`);
  }
}

/** Every profile in force: the built-in ones, changed or joined by the config's `agents`. */
export function agentProfiles(config: Pick<ResolvedConfig, 'agents'>): Map<string, AgentProfile> {
  const profiles = new Map<string, AgentProfile>(Object.entries(BUILTIN_AGENTS));
  for (const [name, entry] of Object.entries(config.agents ?? {})) profiles.set(name, mergeProfile(name, profiles.get(name), entry));
  return profiles;
}

function mergeProfile(name: string, base: AgentProfile | undefined, entry: AgentConfig): AgentProfile {
  const start = base ?? { ...BUILTIN_AGENTS.build!, name, description: `custom agent ${name}`, builtin: false };
  return {
    name,
    description: entry.description ?? start.description,
    prompt: entry.prompt ?? start.prompt,
    ...(entry.model ?? start.model ? { model: entry.model ?? start.model } : {}),
    tools: { ...start.tools, ...entry.tools },
    permission: [...start.permission, ...(entry.permission ?? [])],
    builtin: start.builtin,
  };
}

/**
 * The profile named `name` (DEFAULT_AGENT when null or undefined). Throws UnknownAgentError naming
 * it and listing the defined ones: admission refuses an unknown name before anything is stored.
 */
export function resolveAgent(config: Pick<ResolvedConfig, 'agents'>, name: string | null | undefined): AgentProfile {
  const profiles = agentProfiles(config);
  const wanted = name ?? DEFAULT_AGENT;
  const profile = profiles.get(wanted);
  if (!profile) throw new UnknownAgentError(wanted, [...profiles.keys()]);
  return profile;
}

/** Whether the profile lets the model have `tool` (a tool it switches off is hidden and denied). */
export function toolEnabled(profile: AgentProfile, tool: string): boolean {
  return profile.tools[tool] !== false;
}

/** The tool specs a request with this profile offers the model. */
export function visibleTools<T extends Pick<ToolSpec, 'name'>>(profile: AgentProfile, specs: readonly T[]): T[] {
  return specs.filter((s) => toolEnabled(profile, s.name));
}

/** Tools the profile switches off, for messages. */
export function disabledTools(profile: AgentProfile): string[] {
  return Object.entries(profile.tools).filter(([, on]) => !on).map(([tool]) => tool);
}

/**
 * The permission rules of a request with this profile: the config's, then a deny for every tool
 * the profile switches off, then the profile's own rules (last match wins).
 */
export function permissionRulesFor(profile: AgentProfile, configRules: readonly PermissionRule[]): PermissionRule[] {
  return [...configRules, ...disabledTools(profile).map((tool) => ({ tool, action: 'deny' as const })), ...profile.permission];
}

export interface SystemPromptRequest {
  /** The session's directory. */
  location: string;
  /** `$LOOM_HOME` (the global AGENTS.md). */
  home: string;
  profile: AgentProfile;
  /** The `provider/model` the request goes to. */
  model: string;
  /** From the injected clock (the store's). */
  now: Date;
  /** The user's home directory: instruction files are not looked for at or above it. */
  userHome?: string;
  /** Default `process.platform`. */
  platform?: string;
}

/**
 * The system prompt of a request: the profile's prompt, the environment (directory, repository
 * root, platform, date from the injected clock, model, profile) and the instruction files, each
 * labelled with its path (services/instructions.ts). Reads files; never throws for one.
 */
export async function buildSystemPrompt(request: SystemPromptRequest): Promise<string> {
  const instructions = await discoverInstructions({ location: request.location, home: request.home, userHome: request.userHome });
  const environment = [
    'Environment:',
    `- Working directory: ${request.location}`,
    `- Repository root: ${instructions.repositoryRoot ?? '(not inside a git repository)'}`,
    `- Platform: ${request.platform ?? process.platform}`,
    `- Date: ${request.now.toISOString().slice(0, 10)}`,
    `- Model: ${request.model}`,
    `- Agent profile: ${request.profile.name} (${request.profile.description})`,
  ].join('\n');
  const disabled = disabledTools(request.profile);
  const restrictions = disabled.length > 0 ? `Tools not available to this profile: ${disabled.join(', ')}.` : '';
  return [request.profile.prompt, restrictions, environment, renderInstructions(instructions)].filter((part) => part !== '').join('\n\n');
}
