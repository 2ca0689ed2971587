/** The tools every session gets, and a registry holding them. */
import { createToolRegistry, type ToolRegistry } from '../registry.js';
import type { Tool } from '../types.js';
import { bashTool } from './bash.js';
import { editTool } from './edit.js';
import { globTool } from './glob.js';
import { grepTool } from './grep.js';
import { listTool } from './list.js';
import { readTool } from './read.js';
import { taskTool } from './task.js';
import { webfetchTool } from './webfetch.js';
import { writeTool } from './write.js';

/** Built-in tools, in the order they are offered to the model. */
export const builtinTools: readonly Tool[] = [readTool, writeTool, editTool, listTool, globTool, grepTool, bashTool, webfetchTool, taskTool];

/** A fresh registry with every built-in tool registered; plugins may add more. */
export function createDefaultRegistry(): ToolRegistry {
  const registry = createToolRegistry();
  for (const tool of builtinTools) registry.register(tool);
  return registry;
}

export { bashTool, editTool, globTool, grepTool, listTool, readTool, taskTool, webfetchTool, writeTool };
