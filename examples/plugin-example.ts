/**
 * An example Loom plugin (README, "Writing a plugin"). `npm run build` compiles it to
 * `dist/examples/plugin-example.js`; name that file in `$LOOM_HOME/config.jsonc`:
 *
 *   {
 *     "version": 1,
 *     "plugins": [
 *       { "module": "/path/to/loom/dist/examples/plugin-example.js", "options": { "temperature": 0.2 } }
 *     ]
 *   }
 *
 * It shows each part of the plugin API:
 * - a tool (`word_count`) with a zod input, a timeout and an idempotent flag, like a built-in;
 * - a model registered in the catalog, with its limits and price;
 * - hooks: `chat.params` (a sampling temperature), `chat.headers` (a header naming the plugin),
 *   `permission.ask` (its own harmless tool runs without asking);
 * - `loom.on`, to log every activity that settles;
 * - `loom.onDispose`, to say goodbye when it is unloaded.
 *
 * The only import is a type: at run time a plugin needs nothing but the `loom` it is given (its
 * zod is `loom.z`), so the same code works as a plain `.mjs` file outside the Loom tree.
 */
import type { LoomPlugin } from '../services/plugins.js';

interface ExampleOptions {
  /** Sampling temperature for every request (unset: the provider's default). */
  temperature?: number;
  /** The model to register (default `openai/example-mini`). */
  model?: string;
}

const plugin: LoomPlugin = (loom, options) => {
  const { temperature, model = 'openai/example-mini' } = options as ExampleOptions;
  const z = loom.z;

  loom.tool.register({
    name: 'word_count',
    description: 'Counts the lines, words and characters of a text.',
    input: z.object({ text: z.string().describe('the text to count') }),
    idempotent: true,
    timeoutMs: 1_000,
    async execute({ text }: { text: string }) {
      const lines = text === '' ? 0 : text.split('\n').length;
      const words = text.split(/\s+/).filter((w) => w !== '').length;
      return { output: `${lines} lines, ${words} words, ${text.length} characters` };
    },
  });

  loom.model.register({
    id: model,
    name: 'Example mini model',
    capabilities: { toolCalling: true, reasoning: false },
    limits: { context: 128_000, output: 16_384 },
    cost: { input: 0.15, output: 0.6 },
  });

  if (temperature !== undefined) {
    loom.hook('chat.params', (draft) => {
      draft.temperature = temperature;
    });
  }

  loom.hook('chat.headers', (draft) => {
    draft['x-loom-plugin'] = loom.name;
  });

  // word_count reads nothing and changes nothing: no need to ask the user about it.
  loom.hook('permission.ask', (draft) => {
    if (draft.tool === 'word_count') draft.decision = 'allow';
  });

  loom.on('activity.settled', (event) => {
    if (event.type === 'activity.settled') loom.log.info(`session ${event.sessionId}: activity ${event.data.status} after ${event.data.turns} turn(s)`);
  });

  loom.onDispose(() => loom.log.info('unloaded'));
};

export default plugin;
