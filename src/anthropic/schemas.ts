// Anthropic's Messages API requests as llmatic accepts them (TypeBox, declared
// once). Validated leniently, because Claude Code and the SDKs add fields and
// block types often: blocks are one loose object, read by their type in
// convert.ts (unknown ones are dropped), unknown fields are ignored.
import { type Static, type TSchema, t } from "elysia";
import { LIMITS } from "../openai/limits";

const opt = <T extends TSchema>(s: T) => t.Optional(t.Union([s, t.Null()]));

/** An image block's source: base64 bytes or a URL. */
const ImageSource = t.Object({
  type: t.String({ maxLength: 32 }),
  media_type: opt(t.String({ maxLength: 128 })),
  data: opt(t.String()),
  url: opt(t.String({ maxLength: 8192 })),
});

/** The blocks a tool result may hold (text, images...). */
const InnerBlock = t.Object({
  type: t.String({ maxLength: 64 }),
  text: opt(t.String()),
  source: opt(ImageSource),
});

export const Block = t.Object({
  type: t.String({ maxLength: 64 }),
  text: opt(t.String()),
  // thinking
  thinking: opt(t.String()),
  signature: opt(t.String()),
  // tool_use
  id: opt(t.String({ maxLength: 256 })),
  name: opt(t.String({ maxLength: 256 })),
  input: t.Optional(t.Unknown()),
  // tool_result
  tool_use_id: opt(t.String({ maxLength: 256 })),
  content: opt(t.Union([t.String(), t.Array(InnerBlock, { maxItems: LIMITS.contentParts })])),
  is_error: opt(t.Boolean()),
  // image
  source: opt(ImageSource),
});
export type Block = Static<typeof Block>;

const Content = t.Union([t.String(), t.Array(Block, { maxItems: LIMITS.contentParts })]);

export const AnthropicMessage = t.Object({
  role: t.String({ maxLength: 32 }),
  content: Content,
});

export const AnthropicTool = t.Object({
  name: t.String({ maxLength: 256 }),
  type: opt(t.String({ maxLength: 64 })),
  description: opt(t.String()),
  input_schema: opt(t.Record(t.String(), t.Unknown())),
});
export type AnthropicTool = Static<typeof AnthropicTool>;

const fields = {
  model: t.String({ maxLength: 512 }),
  messages: t.Array(AnthropicMessage, { maxItems: LIMITS.messages }),
  system: opt(t.Union([t.String(), t.Array(Block, { maxItems: LIMITS.contentParts })])),
  tools: opt(t.Array(AnthropicTool, { maxItems: LIMITS.tools })),
  tool_choice: opt(
    t.Object({
      type: t.String({ maxLength: 32 }),
      name: opt(t.String({ maxLength: 256 })),
      disable_parallel_tool_use: opt(t.Boolean()),
    }),
  ),
  thinking: opt(t.Object({ type: t.String({ maxLength: 32 }), budget_tokens: opt(t.Integer({ minimum: 0 })) })),
  /** structured outputs: {type: "json_schema", schema} */
  output_format: opt(t.Object({ type: t.String({ maxLength: 32 }), schema: opt(t.Record(t.String(), t.Unknown())) })),
  metadata: t.Optional(t.Unknown()),
  // llama.cpp's extension, as on chat completions
  chat_template_kwargs: opt(t.Record(t.String(), t.Unknown())),
};

export const MessagesRequest = t.Object(
  {
    ...fields,
    max_tokens: opt(t.Integer({ minimum: 1 })),
    stop_sequences: opt(t.Array(t.String({ maxLength: LIMITS.stopLength }), { maxItems: 16 })),
    temperature: opt(t.Number({ minimum: 0, maximum: 2 })),
    top_p: opt(t.Number({ minimum: 0, maximum: 1 })),
    top_k: opt(t.Integer({ minimum: 0, maximum: LIMITS.topK })),
    stream: opt(t.Boolean()),
    ignore_eos: opt(t.Boolean()),
    speculative: opt(t.Boolean()),
  },
  { description: "POST /v1/messages" },
);
export type MessagesRequest = Static<typeof MessagesRequest>;

export const CountTokensRequest = t.Object(fields, { description: "POST /v1/messages/count_tokens" });
export type CountTokensRequest = Static<typeof CountTokensRequest>;
