//===- kiln-serve.cpp - An OpenAI-compatible server for an artifact ------===//
//
//   kiln-serve model.kiln [--host 127.0.0.1] [--port 8080] [--max-queue N]
//
// POST /v1/completions and /v1/chat/completions (with "stream": true as
// server-sent events, or one JSON answer), GET /health and /metrics
// (Prometheus text). The requests run on the artifact's batch rows through
// the Engine (continuous batching: admitted and retired at every step). A
// bad request gets HTTP 400 with {"error": {"message", "type", "param"}};
// a client that goes away while its answer streams frees its row.
//
// Links the runtime only (no MLIR, no LLVM); cpp-httplib and nlohmann-json
// are Debian's header-only packages.
//
//===----------------------------------------------------------------------===//

#include "Engine.h"

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/ChatTemplate.h"
#include "kiln/runtime/Session.h"
#include "kiln/runtime/Tokenizer.h"

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <pthread.h>
#include <random>

using namespace kiln;
using namespace kiln::runtime;
using namespace kiln::serve;
using nlohmann::json;

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "kiln-serve: error: %s\n", message.c_str());
  return 1;
}

/// A request the server refuses: HTTP `status`, the message, the field.
struct BadRequest {
  int status = 400;
  std::string message, param;
};

json errorBody(const std::string &message, const std::string &type,
               const std::string &param) {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}};
  if (!param.empty())
    e["param"] = param;
  return json{{"error", e}};
}

void reply(httplib::Response &res, int status, const json &body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

/// The field `name` of `body` as a T, `fallback` when absent or null.
template <typename T>
T field(const json &body, const char *name, T fallback, bool *bad,
        BadRequest *why) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null())
    return fallback;
  bool ok;
  if constexpr (std::is_same_v<T, bool>)
    ok = it->is_boolean();
  else if constexpr (std::is_integral_v<T>)
    ok = it->is_number_integer();
  else
    ok = it->is_number();
  if (!ok) {
    *bad = true;
    *why = {400,
            std::string("'") + name + "' must be a " +
                (std::is_same_v<T, bool> ? "boolean"
                 : std::is_integral_v<T> ? "integer"
                                         : "number"),
            name};
    return fallback;
  }
  return it->get<T>();
}

struct Parsed {
  GenerationRequest request;
  bool stream = false;
  bool returnTokenIds = false; // vLLM's extension: choices[0].token_ids
};

class Server {
public:
  Server(Engine &engine, const Tokenizer &tokenizer, std::string modelName)
      : engine(engine), tokenizer(tokenizer), modelName(std::move(modelName)) {
    if (!tokenizer.chatTemplate().empty())
      chat = ChatTemplate::parse(tokenizer.chatTemplate(), &chatError);
    else
      chatError = "the model's tokenizer has no chat_template";
  }

  void install(httplib::Server &http) {
    http.Get("/health", [](const httplib::Request &, httplib::Response &res) {
      reply(res, 200, json{{"status", "ok"}});
    });
    http.Get("/metrics", [this](const httplib::Request &,
                                httplib::Response &res) { metrics(res); });
    http.Get("/v1/models",
             [this](const httplib::Request &, httplib::Response &res) {
               reply(res, 200,
                     json{{"object", "list"},
                          {"data", json::array({{{"id", modelName},
                                                 {"object", "model"},
                                                 {"owned_by", "kiln"}}})}});
             });
    http.Post("/v1/completions",
              [this](const httplib::Request &req, httplib::Response &res) {
                handle(req, res, /*chatApi=*/false);
              });
    http.Post("/v1/chat/completions",
              [this](const httplib::Request &req, httplib::Response &res) {
                handle(req, res, /*chatApi=*/true);
              });
  }

private:
  void metrics(httplib::Response &res) {
    EngineMetrics m = engine.metrics();
    std::string out;
    auto add = [&](const char *name, const char *type, const char *help,
                   int64_t value) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name +
             " " + type + "\n" + name + " " + std::to_string(value) + "\n";
    };
    add("kiln_requests_total", "counter", "Requests accepted.", m.requests);
    add("kiln_requests_finished_total", "counter",
        "Requests that ended normally.", m.finished);
    add("kiln_requests_failed_total", "counter", "Requests that failed.",
        m.failed);
    add("kiln_requests_cancelled_total", "counter",
        "Requests whose client went away.", m.cancelled);
    add("kiln_requests_rejected_total", "counter",
        "Requests refused (HTTP 400 or 503).", rejected.load());
    add("kiln_requests_running", "gauge", "Requests holding a batch row.",
        m.running);
    add("kiln_requests_queued", "gauge", "Requests waiting for a row.",
        m.queued);
    add("kiln_prompt_tokens_total", "counter", "Prompt tokens accepted.",
        m.promptTokens);
    add("kiln_generated_tokens_total", "counter", "Tokens generated.",
        m.generatedTokens);
    add("kiln_decode_steps_total", "counter", "Batched decode calls.",
        m.decodeSteps);
    out += "# HELP kiln_decode_entry_steps_total Batched decode calls by the "
           "rows of the entry that ran them (--decode-batches adds entries "
           "for fewer rows).\n# TYPE kiln_decode_entry_steps_total counter\n";
    for (auto [rows, steps] : m.decodeStepsByRows)
      out += "kiln_decode_entry_steps_total{rows=\"" + std::to_string(rows) +
             "\"} " + std::to_string(steps) + "\n";
    add("kiln_prefill_calls_total", "counter",
        "Prefill calls (a chunk of each prompt being prefilled).",
        m.prefillCalls);
    auto addSeconds = [&](const char *name, const char *help, double value) {
      char number[64];
      std::snprintf(number, sizeof number, "%.6f", value);
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name +
             " counter\n" + name + " " + number + "\n";
    };
    addSeconds("kiln_decode_call_seconds_total",
               "Time in batched decode calls (device work, inputs and "
               "results).",
               m.decodeSeconds);
    addSeconds("kiln_prefill_call_seconds_total",
               "Time in prefill calls (device work, inputs and results).",
               m.prefillSeconds);
    addSeconds("kiln_scheduler_host_seconds_total",
               "The scheduler's busy time outside those calls: admitting, "
               "sampling on the host, detokenizing, stop strings, streaming.",
               m.hostSeconds);
    add("kiln_kv_slots", "gauge",
        "Batch rows (sequences one call runs; with a contiguous cache each "
        "has a whole context of KV cache).",
        m.slots);
    add("kiln_kv_slots_in_use", "gauge", "Batch rows in use.", m.running);
    add("kiln_kv_blocks", "gauge",
        "Blocks of the paged KV cache's pool (0: contiguous cache).",
        m.kvBlocks);
    add("kiln_kv_blocks_in_use", "gauge",
        "Blocks of the paged KV cache that sequences hold.",
        m.kvBlocks - m.kvBlocksFree);
    add("kiln_preemptions_total", "counter",
        "Sequences preempted for KV blocks (recomputed later).", m.preemptions);
    res.set_content(out, "text/plain; version=0.0.4");
  }

  /// The request's body as a GenerationRequest, or why not.
  std::optional<Parsed> parse(const std::string &body, bool chatApi,
                              BadRequest *why) {
    json j;
    try {
      j = json::parse(body);
    } catch (const json::parse_error &e) {
      *why = {400, std::string("the body is not JSON: ") + e.what(), ""};
      return std::nullopt;
    }
    if (!j.is_object()) {
      *why = {400, "the body must be a JSON object", ""};
      return std::nullopt;
    }
    Parsed p;
    bool bad = false;
    p.stream = field<bool>(j, "stream", false, &bad, why);
    int64_t n = field<int64_t>(j, "n", 1, &bad, why);
    int64_t maxTokens = field<int64_t>(j, "max_tokens", 16, &bad, why);
    if (chatApi)
      maxTokens =
          field<int64_t>(j, "max_completion_tokens", maxTokens, &bad, why);
    SamplerOptions &s = p.request.sampler;
    // OpenAI's defaults: temperature 1, top_p 1.
    s.temperature = field<double>(j, "temperature", 1.0, &bad, why);
    s.topP = field<double>(j, "top_p", 1.0, &bad, why);
    s.topK = field<int64_t>(j, "top_k", 0, &bad, why);
    s.minP = field<double>(j, "min_p", 0.0, &bad, why);
    if (j.contains("seed") && !j["seed"].is_null()) {
      if (!j["seed"].is_number_integer()) {
        *why = {400, "'seed' must be an integer", "seed"};
        return std::nullopt;
      }
      s.seed = j["seed"].get<json::number_integer_t>();
    } else {
      s.seed = std::random_device{}();
    }
    if (bad)
      return std::nullopt;
    if (n != 1) {
      *why = {400, "'n' must be 1 (one completion per request)", "n"};
      return std::nullopt;
    }
    for (const char *unsupported : {"logprobs", "echo", "best_of", "suffix"})
      if (j.contains(unsupported) && !j[unsupported].is_null() &&
          j[unsupported] != false && j[unsupported] != 1) {
        *why = {400, std::string("'") + unsupported + "' is not supported",
                unsupported};
        return std::nullopt;
      }
    p.request.maxTokens = maxTokens;
    // vLLM's extension: generate max_tokens whatever the tokens (benchmarks).
    p.request.ignoreEos = field<bool>(j, "ignore_eos", false, &bad, why);
    if (bad)
      return std::nullopt;
    // vLLM's extension: the generated token ids beside the text.
    p.returnTokenIds = field<bool>(j, "return_token_ids", false, &bad, why);
    if (bad)
      return std::nullopt;
    if (j.contains("stop") && !j["stop"].is_null()) {
      const json &stop = j["stop"];
      if (stop.is_string())
        p.request.stops.push_back(stop.get<std::string>());
      else if (stop.is_array() &&
               std::all_of(stop.begin(), stop.end(),
                           [](const json &e) { return e.is_string(); }))
        for (const json &e : stop)
          p.request.stops.push_back(e.get<std::string>());
      else {
        *why = {400, "'stop' must be a string or an array of strings", "stop"};
        return std::nullopt;
      }
    }

    std::string text;
    Tokenizer::EncodeOptions encode;
    std::string error;
    if (chatApi) {
      if (!j.contains("messages") || !j["messages"].is_array() ||
          j["messages"].empty()) {
        *why = {400, "'messages' must be a non-empty array", "messages"};
        return std::nullopt;
      }
      std::vector<ChatMessage> messages;
      for (const json &m : j["messages"]) {
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
            !m.contains("content") || !m["content"].is_string()) {
          *why = {400,
                  "each message must be an object with string 'role' and "
                  "'content'",
                  "messages"};
          return std::nullopt;
        }
        messages.push_back(
            {m["role"].get<std::string>(), m["content"].get<std::string>()});
      }
      if (!chat) {
        *why = {400, "chat completions: " + chatError, "messages"};
        return std::nullopt;
      }
      // The template writes the special tokens (BOS) itself.
      if (!chat->render(messages, /*addGenerationPrompt=*/true,
                        tokenizer.bosToken(), tokenizer.eosToken(), &text,
                        &error)) {
        *why = {400, "chat template: " + error, "messages"};
        return std::nullopt;
      }
      encode.addSpecialTokens = false;
    } else {
      if (!j.contains("prompt")) {
        *why = {400, "'prompt' is required", "prompt"};
        return std::nullopt;
      }
      json prompt = j["prompt"];
      if (prompt.is_array() && prompt.size() == 1 && prompt[0].is_string())
        prompt = prompt[0];
      if (prompt.is_array() && !prompt.empty() &&
          std::all_of(prompt.begin(), prompt.end(),
                      [](const json &e) { return e.is_number_integer(); })) {
        for (const json &e : prompt)
          p.request.prompt.push_back(e.get<int64_t>());
        return p;
      }
      if (!prompt.is_string()) {
        *why = {400,
                "'prompt' must be a string, or an array of token ids (one "
                "prompt per request)",
                "prompt"};
        return std::nullopt;
      }
      text = prompt.get<std::string>();
    }
    if (!tokenizer.encode(text, encode, &p.request.prompt, &error)) {
      *why = {400, (chatApi ? "messages: " : "prompt: ") + error,
              chatApi ? "messages" : "prompt"};
      return std::nullopt;
    }
    return p;
  }

  void handle(const httplib::Request &req, httplib::Response &res,
              bool chatApi) {
    BadRequest why;
    std::optional<Parsed> parsed = parse(req.body, chatApi, &why);
    std::shared_ptr<Stream> stream;
    if (parsed) {
      std::string error, param;
      bool busy = false;
      stream = engine.submit(parsed->request, &error, &param, &busy);
      if (!stream)
        why = {busy ? 503 : 400, error, busy ? "" : param};
    }
    if (!stream) {
      ++rejected;
      reply(
          res, why.status,
          errorBody(why.message,
                    why.status == 503 ? "server_busy" : "invalid_request_error",
                    why.param));
      return;
    }
    const std::string id = std::string(chatApi ? "chatcmpl-" : "cmpl-") +
                           std::to_string(++requestCount);
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    json base = {{"id", id},
                 {"object", chatApi ? "chat.completion" : "text_completion"},
                 {"created", created},
                 {"model", modelName}};
    if (!parsed->stream) {
      std::string text;
      Stream::Event e;
      while (true) {
        if (!stream->next(&e, std::chrono::milliseconds(1000)))
          continue;
        if (e.done)
          break;
        text += e.text;
      }
      if (e.finish == "error" || e.finish == "cancelled") {
        reply(res, e.finish == "error" ? 500 : 503,
              errorBody(e.error.empty() ? "the request was cancelled" : e.error,
                        "server_error", ""));
        return;
      }
      json choice = {{"index", 0}, {"finish_reason", e.finish}};
      if (chatApi)
        choice["message"] = {{"role", "assistant"}, {"content", text}};
      else {
        choice["text"] = text;
        choice["logprobs"] = nullptr;
      }
      if (parsed->returnTokenIds)
        choice["token_ids"] = e.tokens;
      json body = base;
      body["choices"] = json::array({choice});
      body["usage"] = {{"prompt_tokens", e.promptTokens},
                       {"completion_tokens", e.completionTokens},
                       {"total_tokens", e.promptTokens + e.completionTokens}};
      reply(res, 200, body);
      return;
    }

    // Server-sent events: a chunk per piece of text, then the finish reason
    // and usage, then [DONE].
    base["object"] = chatApi ? "chat.completion.chunk" : "text_completion";
    auto first = std::make_shared<bool>(true);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [stream, base, chatApi, first,
         tokenIds = parsed->returnTokenIds](size_t, httplib::DataSink &sink) {
          auto send = [&](const json &chunk) {
            std::string line = "data: " + chunk.dump() + "\n\n";
            return sink.write(line.data(), line.size());
          };
          auto chunkOf = [&](const std::string &text,
                             const json &finish) -> json {
            json choice = {{"index", 0}, {"finish_reason", finish}};
            if (chatApi) {
              json delta = json::object();
              if (*first)
                delta["role"] = "assistant";
              if (!text.empty() || *first)
                delta["content"] = text;
              choice["delta"] = delta;
            } else {
              choice["text"] = text;
              choice["logprobs"] = nullptr;
            }
            *first = false;
            json chunk = base;
            chunk["choices"] = json::array({choice});
            return chunk;
          };
          Stream::Event e;
          if (!stream->next(&e, std::chrono::milliseconds(200)))
            return true; // nothing yet: called again
          if (!e.done) {
            if (!send(chunkOf(e.text, nullptr))) {
              stream->cancel(); // the client is gone
              return false;
            }
            return true;
          }
          bool ok;
          if (e.finish == "error" || e.finish == "cancelled") {
            ok = send(errorBody(e.error.empty() ? "the request was cancelled"
                                                : e.error,
                                "server_error", ""));
          } else {
            json chunk = chunkOf("", e.finish);
            if (tokenIds) // all of them, with the finish reason
              chunk["choices"][0]["token_ids"] = e.tokens;
            chunk["usage"] = {
                {"prompt_tokens", e.promptTokens},
                {"completion_tokens", e.completionTokens},
                {"total_tokens", e.promptTokens + e.completionTokens}};
            ok = send(chunk);
          }
          static const std::string doneLine = "data: [DONE]\n\n";
          if (ok)
            sink.write(doneLine.data(), doneLine.size());
          sink.done();
          return true;
        },
        [stream](bool success) {
          if (!success)
            stream->cancel();
        });
  }

  Engine &engine;
  const Tokenizer &tokenizer;
  std::string modelName;
  std::unique_ptr<ChatTemplate> chat;
  std::string chatError;
  std::atomic<int64_t> requestCount{0}, rejected{0};
};

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"kiln-serve: an OpenAI-compatible HTTP server for a compiled "
               "model (continuous batching over its batch rows)"};
  std::string model, host = "127.0.0.1";
  int port = 8080;
  int64_t maxQueue = 256;
  int threads = 64;
  bool noVerify = false, separatePrefill = false;
  app.add_option("model", model, "The compiled artifact (.kiln)")->required();
  app.add_option("--host", host, "Address to bind (default 127.0.0.1)");
  app.add_option("--port", port, "Port (0: any free port; printed)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--max-queue", maxQueue,
                 "Requests that may wait for a batch row (then HTTP 503)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  app.add_option("--threads", threads,
                 "HTTP worker threads (each streaming answer holds one)")
      ->check(CLI::Range(1, 4096));
  app.add_flag("--separate-prefill", separatePrefill,
               "Decode the running requests in a call of their own after a "
               "step's prompt chunks (default: in the same call)");
  app.add_flag("--no-verify-weights", noVerify,
               "Skip checking the weights' checksum at load");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    return app.exit(e);
  }

  // SIGINT/SIGTERM go to one thread that stops the server; no other thread
  // takes them. Writes to a closed connection fail instead of killing us.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);

  std::string error;
  Artifact::OpenOptions open;
  open.verifyWeights = !noVerify;
  std::shared_ptr<const Artifact> artifact =
      Artifact::open(model, open, &error);
  if (!artifact)
    return fail(error);
  if (artifact->tokenizer().empty())
    return fail(model + ": the artifact has no tokenizer (compile it with "
                        "tokenizer.json beside model.onnx, or --tokenizer "
                        "DIR)");
  std::unique_ptr<Tokenizer> tokenizer =
      Tokenizer::create(artifact->tokenizer(), &error);
  if (!tokenizer)
    return fail(model + ": " + error);
  std::unique_ptr<Session> session = Session::create(artifact, &error);
  if (!session)
    return fail(error);

  Engine engine(*session, tokenizer.get(), maxQueue, !separatePrefill);
  std::string name = model;
  if (size_t slash = name.find_last_of('/'); slash != std::string::npos)
    name = name.substr(slash + 1);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".kiln") == 0)
    name.resize(name.size() - 5);
  Server server(engine, *tokenizer, name);
  httplib::Server http;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.install(http);

  int bound = port == 0 ? http.bind_to_any_port(host)
                        : (http.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    engine.shutdown();
    return fail("cannot listen on " + host + ":" + std::to_string(port));
  }
  std::thread stopper([&http, stopSignals] {
    int sig = 0;
    sigwait(&stopSignals, &sig);
    http.stop();
  });
  std::fprintf(stderr,
               "kiln-serve: %s on %s: %lld batch rows, context %lld; "
               "listening on http://%s:%d\n",
               name.c_str(), session->device().c_str(),
               static_cast<long long>(session->batch()),
               static_cast<long long>(session->maxSeqLen()), host.c_str(),
               bound);
  std::fflush(stderr);
  bool ok = http.listen_after_bind();
  engine.shutdown();
  // The signal thread returns at once if it has not already (a signal
  // stopped the server).
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  std::fprintf(stderr, "kiln-serve: stopped\n");
  return ok ? 0 : 1;
}
