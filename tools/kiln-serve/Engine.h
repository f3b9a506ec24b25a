//===- Engine.h - Continuous batching over a session's rows ---*- C++ -*-===//
//
// kiln-serve's scheduler: one thread owns the Session and runs generation
// requests on its batch rows (the compiled --batch; each row a slot with the
// whole context of KV cache). Requests wait in a queue; at every step the
// engine admits queued requests into free rows, feeds the next chunk (the
// artifact's prefill chunk) of every prompt still being prefilled in one
// prefill call, in which every request past its prompt also advances by one
// token (its token a one-token "prompt" at its position: chunked prefill and
// decode in one call); a step without prompt chunks advances them in a
// single batched decode call. It retires the requests that end (an EOS
// token, a stop string, max_tokens, the context, a cancel). A long prompt
// so delays the others by one chunk a step, not by its whole prefill. A
// failed call ends only the requests in it. kiln-serve --separate-prefill
// gives the decoding rows their own call after the prompt chunks instead.
//
// With a paged KV cache (kiln-compile --kv-block-size) the rows share a pool
// of blocks: a request is admitted while the pool has the blocks for its
// prompt (beyond those the running rows need for their next call), and when
// a step's calls need more blocks than are free, the newest running request
// is preempted: its blocks go back to the pool and it waits in its row, to
// be recomputed (its prompt and the tokens it generated prefilled again)
// once blocks are free, before any new request is admitted. Its output goes
// on where it stopped.
//
// Output reaches the caller through a Stream: text pieces as soon as they
// are final (StreamDecoder, StopStrings), then one end event.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILN_SERVE_ENGINE_H
#define KILN_TOOLS_KILN_SERVE_ENGINE_H

#include "kiln/runtime/Sampler.h"
#include "kiln/runtime/Session.h"
#include "kiln/runtime/Tokenizer.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace kiln::serve {

struct GenerationRequest {
  std::vector<int64_t> prompt;
  int64_t maxTokens = 16;
  runtime::SamplerOptions sampler;
  std::vector<std::string> stops; // none empty
  bool ignoreEos = false;         // benchmarks: run to max_tokens
};

/// One request's output, written by the engine, read by one HTTP handler.
class Stream {
public:
  struct Event {
    std::string text;   // a final piece of the completion (may be empty)
    bool done = false;  // the last event
    std::string finish; // when done: "stop", "length", "cancelled", "error"
    std::string error;  // when finish == "error"
    int64_t promptTokens = 0, completionTokens = 0;
    std::vector<int64_t> tokens; // when done: the generated token ids
  };

  /// Waits up to `timeout` for the next event; false when none came.
  bool next(Event *event, std::chrono::milliseconds timeout);
  /// The caller is gone: the engine frees the request's row at its next
  /// step (or drops it from the queue).
  void cancel() { cancelled = true; }
  bool isCancelled() const { return cancelled; }

  // The engine's side.
  void push(std::string text);
  void end(std::string finish, std::string error, int64_t promptTokens,
           int64_t completionTokens, std::vector<int64_t> tokens = {});

private:
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<Event> events;
  std::atomic<bool> cancelled{false};
};

struct EngineMetrics {
  int64_t slots = 0, running = 0, queued = 0;
  int64_t requests = 0, finished = 0, failed = 0, cancelled = 0;
  int64_t promptTokens = 0, generatedTokens = 0, decodeSteps = 0;
  int64_t prefillCalls = 0; // each feeds a chunk of one or more prompts
  // Where the scheduler's time goes: inside the session's decode and prefill
  // calls (the device's work, inputs and results included), and the rest of
  // its busy steps (admitting, sampling on the host, detokenizing, stop
  // strings, handing text to the clients' streams); idle waits excluded.
  double decodeSeconds = 0, prefillSeconds = 0, hostSeconds = 0;
  // Decode calls by the rows of the entry that ran them (the artifact's
  // batch, or N of a @decode_b<N> entry).
  std::map<int64_t, int64_t> decodeStepsByRows;
  // Paged KV cache: blocks in the pool, free after the last step, and the
  // preemptions so far (0, 0, 0 for contiguous caches).
  int64_t kvBlocks = 0, kvBlocksFree = 0, preemptions = 0;
};

class Engine {
public:
  /// `tokenizer` may be null (ids in, no text out: pieces stay empty).
  /// `maxQueued` bounds the requests waiting for a row. With `mixedSteps`,
  /// a step that feeds prompt chunks advances the decoding rows in the same
  /// call (their one token each, right-aligned in the chunk like a prompt's
  /// last): one call a step; without, they wait for a decode call of their
  /// own after it.
  Engine(runtime::Session &session, const runtime::Tokenizer *tokenizer,
         int64_t maxQueued, bool mixedSteps = true);
  ~Engine();
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  /// Queues `request`; null with `*error`, the request field at fault in
  /// `*param` (and `*busy` when the queue is full) when it cannot run: an
  /// empty prompt, a prompt or max_tokens that do not fit the context, bad
  /// sampling options.
  std::shared_ptr<Stream> submit(GenerationRequest request, std::string *error,
                                 std::string *param, bool *busy);
  EngineMetrics metrics() const;
  int64_t maxSeqLen() const { return context; }
  /// Ends the loop; queued and running requests end with "cancelled".
  void shutdown();

private:
  struct Pending {
    GenerationRequest request;
    std::shared_ptr<Stream> stream;
  };
  struct Slot {
    bool active = false;
    GenerationRequest request;
    std::shared_ptr<Stream> stream;
    std::optional<runtime::Sampler> sampler;
    std::optional<runtime::StreamDecoder> decoder;
    std::optional<runtime::StopStrings> stops;
    std::vector<int64_t> generated;
    int64_t position = 0;  // where the next decode feeds generated.back()
    int64_t prefilled = 0; // replay tokens in the cache (prefill in chunks)
    /// What is prefilled: the prompt, or after a preemption the prompt and
    /// the tokens generated before it.
    std::vector<int64_t> replay;
    bool preempted = false; // waiting for KV blocks, holding none
    uint64_t order = 0;     // admission order (the newest is preempted)
    /// Free again (StreamDecoder holds a reference: no assignment).
    void reset() {
      active = false;
      request = GenerationRequest();
      stream.reset();
      sampler.reset();
      decoder.reset();
      stops.reset();
      generated.clear();
      position = 0;
      prefilled = 0;
      replay.clear();
      preempted = false;
      order = 0;
    }
    bool prefilling() const {
      return active && !preempted &&
             prefilled < static_cast<int64_t>(replay.size());
    }
    /// Running: admitted and not waiting for KV blocks.
    bool running() const { return active && !preempted; }
  };

  void loop();
  /// Admits `pending` into free row `row`; its prompt is prefilled a chunk
  /// per step (prefillStep).
  void start(int64_t row, Pending pending);
  /// The next chunk of the prompt of every row still prefilling, in one
  /// call (with mixedSteps, also every decoding row's next token); rows
  /// whose prompt is then complete take their first token. Whether there
  /// was a call.
  bool prefillStep();
  /// Runs a session call, adding its time to the step's callSeconds and to
  /// the counter `seconds` (decode or prefill calls); returns its result.
  bool timedCall(double EngineMetrics::*seconds,
                 const std::function<bool()> &call);
  /// Takes row `row`'s next token from the last call and ends the request
  /// when it is done.
  void advance(int64_t row);
  void finish(int64_t row, const std::string &reason,
              const std::string &error = "");
  /// Paged KV cache: blocks the running rows still need for their next call
  /// or (`whole`) for the rest of their prompts and one more token.
  int64_t blocksNeeded(bool whole) const;
  /// Paged: whether a sequence of `positions` fits the free blocks beyond
  /// what the running rows need (blocksNeeded(true)) and `promised`.
  bool fits(int64_t positions, int64_t promised) const;
  /// Paged: preempts the newest running rows until the next calls fit.
  void makeRoom();
  /// Paged: resumes preempted rows, oldest first, while they fit; whether
  /// every preempted row runs again.
  bool resumePreempted();

  runtime::Session &session;
  const runtime::Tokenizer *tokenizer;
  const int64_t maxQueued, context;
  const bool mixedSteps, deviceSampling;
  std::vector<int64_t> eos;
  std::vector<Slot> slots;

  mutable std::mutex mutex; // queue, stopping, metrics
  std::condition_variable wake;
  std::deque<Pending> queue;
  bool stopping = false;
  EngineMetrics counters;
  int64_t running = 0;
  uint64_t admissions = 0;
  // The worker's: when its current step began, and its time in the
  // session's calls since then (EngineMetrics::hostSeconds).
  std::optional<std::chrono::steady_clock::time_point> busyFrom;
  double callSeconds = 0;
  std::thread worker;
};

} // namespace kiln::serve

#endif // KILN_TOOLS_KILN_SERVE_ENGINE_H
