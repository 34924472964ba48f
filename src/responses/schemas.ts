// The Responses API's requests as llmatic accepts them (TypeBox, declared once).
// Lenient where clients differ: items are one loose object checked by their
// type in convert.ts (so an error names the item and what is wrong with it),
// nulls are accepted for optional fields, unknown fields are ignored.
import { type Static, type TSchema, t } from "elysia";
import { LIMITS } from "../openai/limits";

const opt = <T extends TSchema>(s: T) => t.Optional(t.Union([s, t.Null()]));

/** input_text, input_image, output_text, refusal, reasoning_text, summary_text... */
const Part = t.Object({
  type: t.String({ maxLength: 64 }),
  text: opt(t.String()),
  refusal: opt(t.String()),
  // input_image: a data: URI or an http(s) URL (file_id: an uploaded file, not read)
  image_url: opt(t.String()),
  file_id: opt(t.String({ maxLength: 256 })),
  detail: opt(t.String({ maxLength: 16 })),
});

const Parts = t.Array(Part, { maxItems: LIMITS.contentParts });

/** Any input item: a message (with or without type), a function call or its output, a reasoning item... */
export const InputItem = t.Object({
  type: opt(t.String({ maxLength: 64 })),
  id: opt(t.String({ maxLength: 256 })),
  role: opt(t.String({ maxLength: 32 })),
  content: opt(t.Union([t.String(), Parts])),
  status: opt(t.String({ maxLength: 32 })),
  call_id: opt(t.String({ maxLength: 256 })),
  name: opt(t.String({ maxLength: 256 })),
  arguments: opt(t.String()),
  output: opt(t.Union([t.String(), Parts])),
  summary: opt(Parts),
  encrypted_content: opt(t.String()),
});
export type InputItem = Static<typeof InputItem>;

export const ResponseTool = t.Object({
  type: t.String({ maxLength: 64 }),
  name: opt(t.String({ maxLength: 256 })),
  description: opt(t.String()),
  parameters: opt(t.Record(t.String(), t.Unknown())),
  strict: opt(t.Boolean()),
});
export type ResponseTool = Static<typeof ResponseTool>;

const ToolChoice = t.Union([
  t.String({ maxLength: 32 }),
  t.Object({
    type: t.String({ maxLength: 64 }),
    name: opt(t.String({ maxLength: 256 })),
    mode: opt(t.String({ maxLength: 32 })),
    tools: opt(
      t.Array(t.Object({ type: t.String({ maxLength: 64 }), name: opt(t.String()) }), { maxItems: LIMITS.tools }),
    ),
  }),
]);

const TextFormat = t.Object({
  type: t.String({ maxLength: 32 }),
  name: opt(t.String({ maxLength: 256 })),
  description: opt(t.String()),
  schema: opt(t.Record(t.String(), t.Unknown())),
  strict: opt(t.Boolean()),
});

export const ResponseCreateRequest = t.Object(
  {
    model: t.String({ maxLength: 512 }),
    input: opt(t.Union([t.String(), t.Array(InputItem, { maxItems: LIMITS.messages })])),
    instructions: opt(t.String()),
    previous_response_id: opt(t.String({ maxLength: 256 })),
    tools: opt(t.Array(ResponseTool, { maxItems: LIMITS.tools })),
    tool_choice: opt(ToolChoice),
    parallel_tool_calls: opt(t.Boolean()),
    text: opt(t.Object({ format: opt(TextFormat), verbosity: opt(t.String()) })),
    max_output_tokens: opt(t.Integer({ minimum: 1 })),
    temperature: opt(t.Number({ minimum: 0, maximum: 2 })),
    top_p: opt(t.Number({ minimum: 0, maximum: 1 })),
    top_k: opt(t.Integer({ minimum: 0, maximum: LIMITS.topK })),
    seed: opt(t.Integer({ minimum: -(2 ** 63), maximum: 2 ** 64 })),
    reasoning: opt(t.Object({ effort: opt(t.String({ maxLength: 32 })), summary: opt(t.String()) })),
    store: opt(t.Boolean()),
    background: opt(t.Boolean()),
    stream: opt(t.Boolean()),
    metadata: opt(t.Record(t.String(), t.String({ maxLength: 512 }), { maxProperties: 16 })),
    user: opt(t.String()),
    truncation: opt(t.String()),
    // llmatic and llama.cpp extensions, as on chat completions
    chat_template_kwargs: opt(t.Record(t.String(), t.Unknown())),
    reasoning_budget: opt(t.Integer({ minimum: -1 })),
    ignore_eos: opt(t.Boolean()),
    speculative: opt(t.Boolean()),
  },
  { description: "POST /v1/responses" },
);
export type ResponseCreateRequest = Static<typeof ResponseCreateRequest>;
