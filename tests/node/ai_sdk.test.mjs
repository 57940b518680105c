// The Vercel AI SDK (`ai` with its default `@ai-sdk/openai` provider) as the client of a
// running gateway: `openai(model)` speaks the Responses API (/v1/responses), `.completion()`
// the legacy completions (/v1/completions). Run by the Rust integration test
// `sdk_node::vercel_ai_sdk_drives_responses_and_completions`, which starts the gateway (the
// mock models, and an Anthropic mock upstream for the tool call) and passes its base URL in
// GATEWAY_BASE_URL.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText, tool } from "ai";
import { z } from "zod";

const openai = createOpenAI({ baseURL: process.env.GATEWAY_BASE_URL, apiKey: "sk-fake-node-test" });

test("generateText on the default provider answers through /v1/responses", async () => {
  const result = await generateText({ model: openai("mock/echo"), prompt: "hello from node" });
  assert.equal(result.text, "hello from node");
  assert.equal(result.usage.outputTokens, 3);
  assert.equal(result.finishReason, "stop");
  assert.ok(result.response.id.startsWith("resp_"));
});

test("streamText streams the Responses events to the same text and usage", async () => {
  const result = streamText({ model: openai("mock/lorem"), prompt: "5" });
  let text = "";
  for await (const delta of result.textStream) text += delta;
  assert.equal(text.split(/\s+/).filter(Boolean).length, 5);
  assert.equal((await result.usage).outputTokens, 5);
});

const weather = {
  get_weather: tool({
    description: "The weather in a city",
    inputSchema: z.object({ city: z.string(), unit: z.string().optional() }),
  }),
};

test("a tool call comes back as a function_call item from a translated provider", async () => {
  const request = {
    model: openai("anthropic/claude-sonnet-4-5"),
    prompt: "What is the weather in Paris?",
    tools: weather,
  };
  const result = await generateText(request);
  assert.equal(result.toolCalls.length, 1);
  assert.equal(result.toolCalls[0].toolName, "get_weather");
  assert.equal(result.toolCalls[0].input.city, "Paris");
  assert.equal(result.finishReason, "tool-calls");

  const streamed = streamText(request);
  const calls = await streamed.toolCalls;
  assert.equal(calls.length, 1);
  assert.equal(calls[0].toolName, "get_weather");
  assert.equal(calls[0].input.city, "Paris");
});

test("openai.completion() answers through /v1/completions, streamed and not", async () => {
  const result = await generateText({ model: openai.completion("mock/echo"), prompt: "say this" });
  // The SDK writes the prompt as a transcript (`user:\n…\n\nassistant:\n`); mock/echo says it back.
  assert.ok(result.text.includes("say this"), result.text);
  // The transcript is not a number, so mock/lorem would write 32 words: the limit cuts it.
  const stream = streamText({
    model: openai.completion("mock/lorem"),
    prompt: "words",
    maxOutputTokens: 3,
  });
  let text = "";
  for await (const delta of stream.textStream) text += delta;
  assert.equal(text.split(/\s+/).filter(Boolean).length, 3);
  assert.equal(await stream.finishReason, "length");
});
