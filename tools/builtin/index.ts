/** The tools every session gets, and a registry holding them. */
import { createToolRegistry, type ToolRegistry } from '../registry.js';
import type { Tool } from '../types.js';
import { bashTool } from './bash.js';
import { readTool } from './read.js';

/** Built-in tools, in the order they are offered to the model. */
export const builtinTools: readonly Tool[] = [readTool, bashTool];

/** A fresh registry with every built-in tool registered; plugins may add more. */
export function createDefaultRegistry(): ToolRegistry {
  const registry = createToolRegistry();
  for (const tool of builtinTools) registry.register(tool);
  return registry;
}

export { bashTool, readTool };
