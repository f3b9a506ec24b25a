//===- Engine.cpp - Continuous batching over a session's rows ------------===//

#include "Engine.h"

#include <algorithm>

namespace kiln::serve {

using runtime::Sampler;
using Clock = std::chrono::steady_clock;

namespace {
double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
} // namespace

bool Stream::next(Event *event, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex);
  if (!ready.wait_for(lock, timeout, [&] { return !events.empty(); }))
    return false;
  *event = std::move(events.front());
  events.pop_front();
  return true;
}

void Stream::push(std::string text) {
  if (text.empty())
    return;
  {
    std::lock_guard<std::mutex> lock(mutex);
    Event e;
    e.text = std::move(text);
    events.push_back(std::move(e));
  }
  ready.notify_all();
}

void Stream::end(std::string finish, std::string error, int64_t promptTokens,
                 int64_t completionTokens, std::vector<int64_t> tokens) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    Event e;
    e.done = true;
    e.finish = std::move(finish);
    e.error = std::move(error);
    e.promptTokens = promptTokens;
    e.completionTokens = completionTokens;
    e.tokens = std::move(tokens);
    events.push_back(std::move(e));
  }
  ready.notify_all();
}

Engine::Engine(runtime::Session &session, const runtime::Tokenizer *tokenizer,
               int64_t maxQueued, bool mixedSteps)
    : session(session), tokenizer(tokenizer), maxQueued(maxQueued),
      context(session.maxSeqLen()), mixedSteps(mixedSteps),
      deviceSampling(session.samplesOnDevice()),
      slots(static_cast<size_t>(session.batch())) {
  if (tokenizer)
    eos = tokenizer->eosIds();
  // Device sampling draws every row's token there (greedy or not): only the
  // tokens come back. Otherwise the host samples from each row's logits.
  session.setKeepLogits(!deviceSampling);
  counters.slots = session.batch();
  counters.kvBlocks = session.kvBlocks();
  counters.kvBlocksFree = session.freeKvBlocks();
  worker = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(); }

void Engine::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  if (worker.joinable())
    worker.join();
}

std::shared_ptr<Stream> Engine::submit(GenerationRequest request,
                                       std::string *error, std::string *param,
                                       bool *busy) {
  *busy = false;
  *param = "prompt";
  const int64_t promptLen = static_cast<int64_t>(request.prompt.size());
  const int64_t vocab = session.vocabSize();
  if (promptLen == 0) {
    *error = "the prompt encodes to no tokens";
    return nullptr;
  }
  for (int64_t id : request.prompt)
    if (id < 0 || id >= vocab) {
      *error = "prompt token id " + std::to_string(id) +
               " is outside the vocabulary [0, " + std::to_string(vocab) + ")";
      return nullptr;
    }
  if (promptLen > context) {
    *error = "the prompt of " + std::to_string(promptLen) +
             " tokens does not fit the context of " + std::to_string(context) +
             " tokens";
    return nullptr;
  }
  // The last token is sampled but never fed back.
  *param = "max_tokens";
  if (request.maxTokens < 1 || request.maxTokens - 1 > context - promptLen) {
    *error = "max_tokens " + std::to_string(request.maxTokens) +
             " after a prompt of " + std::to_string(promptLen) +
             " tokens does not fit the context of " + std::to_string(context) +
             " tokens (1 to " + std::to_string(context - promptLen + 1) + ")";
    return nullptr;
  }
  // A paged cache must hold the whole sequence at least on its own.
  if (session.paged() &&
      session.kvBlocksFor(promptLen + request.maxTokens) > session.kvBlocks()) {
    *error =
        "a prompt of " + std::to_string(promptLen) + " tokens and " +
        std::to_string(request.maxTokens) + " new ones need " +
        std::to_string(session.kvBlocksFor(promptLen + request.maxTokens)) +
        " KV blocks of " + std::to_string(session.kvBlockSize()) +
        " positions; the pool has " + std::to_string(session.kvBlocks());
    return nullptr;
  }
  if (!Sampler::validate(request.sampler, error, param))
    return nullptr;
  *param = "stop";
  for (const std::string &stop : request.stops)
    if (stop.empty()) {
      *error = "stop: empty string";
      return nullptr;
    }
  param->clear();
  auto stream = std::make_shared<Stream>();
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (stopping || static_cast<int64_t>(queue.size()) >= maxQueued) {
      *busy = true;
      *error = stopping ? "the server is shutting down"
                        : "too many requests are waiting (" +
                              std::to_string(maxQueued) + ")";
      return nullptr;
    }
    ++counters.requests;
    counters.promptTokens += promptLen;
    queue.push_back(Pending{std::move(request), stream});
  }
  wake.notify_all();
  return stream;
}

EngineMetrics Engine::metrics() const {
  std::lock_guard<std::mutex> lock(mutex);
  EngineMetrics m = counters;
  m.running = running;
  m.queued = static_cast<int64_t>(queue.size());
  return m;
}

void Engine::loop() {
  const int64_t batch = session.batch();
  std::vector<int64_t> tokens(batch), positions(batch);
  while (true) {
    std::vector<std::pair<int64_t, Pending>> admitted;
    {
      std::unique_lock<std::mutex> lock(mutex);
      if (busyFrom) // the previous step's time outside the session's calls
        counters.hostSeconds += secondsSince(*busyFrom) - callSeconds;
      wake.wait(lock,
                [&] { return stopping || !queue.empty() || running > 0; });
      if (stopping)
        break;
      busyFrom = Clock::now();
      callSeconds = 0;
      // Paged: preempted rows first, then new requests while blocks remain
      // for their prompts (`promised`: those admitted in this step).
      const bool admit = !session.paged() || resumePreempted();
      int64_t promised = 0;
      for (int64_t row = 0; admit && row < batch && !queue.empty(); ++row) {
        if (slots[row].active)
          continue;
        while (!queue.empty() && queue.front().stream->isCancelled()) {
          queue.front().stream->end("cancelled", "", 0, 0);
          ++counters.cancelled;
          queue.pop_front();
        }
        if (queue.empty())
          break;
        if (session.paged()) {
          const int64_t length =
              static_cast<int64_t>(queue.front().request.prompt.size()) + 1;
          if (!fits(length, promised))
            break;
          promised += session.kvBlocksFor(length);
        }
        slots[row].active = true; // reserved
        ++running;
        admitted.emplace_back(row, std::move(queue.front()));
        queue.pop_front();
      }
    }
    for (auto &[row, pending] : admitted)
      start(row, std::move(pending));
    for (int64_t row = 0; row < batch; ++row)
      if (slots[row].active && slots[row].stream->isCancelled())
        finish(row, "cancelled");
    if (session.paged())
      makeRoom();
    // With mixedSteps, a step with prompt chunks advanced every decoding
    // row too: one call a step.
    if (prefillStep() && mixedSteps)
      continue;

    bool any = false;
    for (int64_t row = 0; row < batch; ++row) {
      Slot &s = slots[row];
      tokens[row] = 0;
      positions[row] = -1;
      if (s.running() && !s.prefilling()) {
        tokens[row] = s.generated.back();
        positions[row] = s.position;
        any = true;
      }
    }
    if (!any)
      continue;
    std::string error;
    if (!timedCall(&EngineMetrics::decodeSeconds, [&] {
          return session.decodeBatch(tokens, positions, &error);
        })) {
      // The requests in the call; those still prefilling were not.
      for (int64_t row = 0; row < batch; ++row)
        if (positions[row] >= 0 && slots[row].active)
          finish(row, "error", error);
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      ++counters.decodeSteps;
      ++counters.decodeStepsByRows[session.lastDecodeRows()];
      counters.kvBlocksFree = session.freeKvBlocks();
    }
    for (int64_t row = 0; row < batch; ++row)
      if (positions[row] >= 0 && slots[row].active) {
        ++slots[row].position;
        advance(row);
      }
  }
  // Shutting down: nothing runs any more.
  std::lock_guard<std::mutex> lock(mutex);
  for (Pending &p : queue)
    p.stream->end("cancelled", "the server is shutting down", 0, 0);
  queue.clear();
  for (Slot &s : slots)
    if (s.active) {
      s.stream->end("cancelled", "the server is shutting down",
                    static_cast<int64_t>(s.request.prompt.size()),
                    static_cast<int64_t>(s.generated.size()));
      s.reset();
    }
  running = 0;
}

bool Engine::timedCall(double EngineMetrics::*seconds,
                       const std::function<bool()> &call) {
  const Clock::time_point called = Clock::now();
  const bool ok = call();
  const double spent = secondsSince(called);
  callSeconds += spent;
  std::lock_guard<std::mutex> lock(mutex);
  counters.*seconds += spent;
  return ok;
}

void Engine::start(int64_t row, Pending pending) {
  Slot &s = slots[row];
  s.request = std::move(pending.request);
  s.stream = std::move(pending.stream);
  s.generated.clear();
  s.sampler.reset();
  s.decoder.reset();
  s.stops.emplace(s.request.stops);
  if (tokenizer)
    s.decoder.emplace(*tokenizer, /*skipSpecialTokens=*/true);
  if (!deviceSampling)
    s.sampler.emplace(s.request.sampler, session.vocabSize());
  s.prefilled = 0;
  s.replay = s.request.prompt;
  s.order = ++admissions;
}

int64_t Engine::blocksNeeded(bool whole) const {
  const int64_t chunk = session.prefillChunk();
  int64_t need = 0;
  for (int64_t row = 0; row < static_cast<int64_t>(slots.size()); ++row) {
    const Slot &s = slots[row];
    if (!s.running())
      continue;
    const int64_t length = static_cast<int64_t>(s.replay.size());
    const int64_t end =
        s.prefilling()
            ? (whole ? length + 1
                     : s.prefilled + std::min(chunk, length - s.prefilled))
            : s.position + (whole ? 2 : 1);
    need += std::max<int64_t>(0, session.kvBlocksFor(end) -
                                     session.rowKvBlocks(row));
  }
  return need;
}

bool Engine::fits(int64_t positions, int64_t promised) const {
  return session.kvBlocksFor(positions) + promised + blocksNeeded(true) <=
         session.freeKvBlocks();
}

void Engine::makeRoom() {
  while (blocksNeeded(false) > session.freeKvBlocks()) {
    int64_t victim = -1;
    for (int64_t row = 0; row < static_cast<int64_t>(slots.size()); ++row)
      if (slots[row].running() &&
          (victim < 0 || slots[row].order > slots[victim].order))
        victim = row;
    if (victim < 0)
      return;
    Slot &s = slots[victim];
    session.releaseRow(victim);
    s.preempted = true;
    s.replay = s.request.prompt;
    s.replay.insert(s.replay.end(), s.generated.begin(), s.generated.end());
    s.prefilled = 0;
    std::lock_guard<std::mutex> lock(mutex);
    ++counters.preemptions;
    counters.kvBlocksFree = session.freeKvBlocks();
  }
}

bool Engine::resumePreempted() {
  while (true) {
    int64_t oldest = -1;
    for (int64_t row = 0; row < static_cast<int64_t>(slots.size()); ++row)
      if (slots[row].active && slots[row].preempted &&
          (oldest < 0 || slots[row].order < slots[oldest].order))
        oldest = row;
    if (oldest < 0)
      return true;
    Slot &s = slots[oldest];
    if (!fits(static_cast<int64_t>(s.replay.size()) + 1, 0))
      return false;
    s.preempted = false;
  }
}

bool Engine::prefillStep() {
  const int64_t batch = session.batch(), chunk = session.prefillChunk();
  std::vector<std::vector<int64_t>> prompts(batch);
  std::vector<int64_t> starts(batch, 0);
  std::vector<char> decoding(batch, 0);
  bool any = false;
  for (int64_t row = 0; row < batch; ++row) {
    Slot &s = slots[row];
    if (!s.prefilling())
      continue;
    const auto &prompt = s.replay;
    const int64_t n = std::min<int64_t>(
        chunk, static_cast<int64_t>(prompt.size()) - s.prefilled);
    prompts[row].assign(prompt.begin() + s.prefilled,
                        prompt.begin() + s.prefilled + n);
    starts[row] = s.prefilled;
    // The device's draws for this request start with the call that ends
    // its prompt (draw n uses the key seed + n, as in kiln-run).
    if (deviceSampling &&
        s.prefilled + n == static_cast<int64_t>(prompt.size()))
      session.setSampling(row, s.request.sampler, s.generated.size());
    any = true;
  }
  if (!any)
    return false;
  // The decoding rows' next tokens ride in the same call, each a one-token
  // "prompt" at its position: its last (only) token is the row sampled.
  if (mixedSteps)
    for (int64_t row = 0; row < batch; ++row) {
      Slot &s = slots[row];
      if (!s.running() || s.prefilling() || s.generated.empty())
        continue;
      prompts[row] = {s.generated.back()};
      starts[row] = s.position;
      decoding[row] = 1;
    }
  std::string error;
  {
    std::lock_guard<std::mutex> lock(mutex);
    ++counters.prefillCalls;
  }
  if (!timedCall(&EngineMetrics::prefillSeconds, [&] {
        return session.prefillBatch(prompts, starts, &error);
      })) {
    for (int64_t row = 0; row < batch; ++row)
      if (!prompts[row].empty())
        finish(row, "error", error);
    return true;
  }
  for (int64_t row = 0; row < batch; ++row) {
    Slot &s = slots[row];
    if (prompts[row].empty())
      continue;
    if (decoding[row]) {
      ++s.position;
      advance(row);
      continue;
    }
    s.prefilled += static_cast<int64_t>(prompts[row].size());
    if (!s.prefilling()) {
      s.position = s.prefilled;
      advance(row);
    }
  }
  return true;
}

void Engine::advance(int64_t row) {
  Slot &s = slots[row];
  int64_t token = -1;
  if (deviceSampling) {
    token = session.argmax(row);
  } else if (const float *logits = session.logits(row)) {
    token = s.sampler->sample(logits);
  }
  if (token < 0) {
    finish(row, "error",
           "the step returned no token for row " + std::to_string(row));
    return;
  }
  s.generated.push_back(token);
  {
    std::lock_guard<std::mutex> lock(mutex);
    ++counters.generatedTokens;
  }
  if (s.stream->isCancelled()) {
    finish(row, "cancelled");
    return;
  }
  if (!s.request.ignoreEos && std::count(eos.begin(), eos.end(), token)) {
    finish(row, "stop");
    return;
  }
  if (s.decoder) {
    std::string piece, shown, error;
    if (!s.decoder->step(token, &piece, &error)) {
      finish(row, "error", error);
      return;
    }
    bool stopped = s.stops->feed(piece, &shown);
    s.stream->push(std::move(shown));
    if (stopped) {
      s.decoder.reset(); // nothing more is shown
      finish(row, "stop");
      return;
    }
  }
  if (static_cast<int64_t>(s.generated.size()) >= s.request.maxTokens ||
      s.position >= context)
    finish(row, "length");
}

void Engine::finish(int64_t row, const std::string &reason,
                    const std::string &error) {
  Slot &s = slots[row];
  // What the decoder and the stop strings still hold, unless a stop string
  // ended the text or the request failed.
  if (s.decoder && reason != "error" && reason != "cancelled") {
    std::string piece, shown;
    s.decoder->finish(&piece);
    if (!s.stops->feed(piece, &shown))
      s.stops->finish(&shown);
    s.stream->push(std::move(shown));
  }
  // Counted before the caller hears of the end, so that /metrics read after
  // an answer includes it.
  {
    std::lock_guard<std::mutex> lock(mutex);
    --running;
    if (reason == "error")
      ++counters.failed;
    else if (reason == "cancelled")
      ++counters.cancelled;
    else
      ++counters.finished;
  }
  s.stream->end(reason, error, static_cast<int64_t>(s.request.prompt.size()),
                static_cast<int64_t>(s.generated.size()), s.generated);
  s.reset();
  session.releaseRow(row);
  std::lock_guard<std::mutex> lock(mutex);
  counters.kvBlocksFree = session.freeKvBlocks();
}

} // namespace kiln::serve
