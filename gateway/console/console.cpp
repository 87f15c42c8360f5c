#include "console/console.hpp"

#include <spdlog/spdlog.h>

#include <vector>

#include "json/json.hpp"
#include "signing/webhook_signature.hpp"

namespace pgcourier::gateway::console {
namespace {

using store::api::Arg;
using Fields = json::Fields;

constexpr const char* kStyle = R"(
*{box-sizing:border-box}body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1c2230;background:#f5f6f8}
header{background:#1c2a44;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:.4em 1.2em;align-items:center}
header a,header button{color:#fff;text-decoration:none;background:none;border:0;font:inherit;cursor:pointer;padding:0}
header strong{margin-right:1em}main{padding:1em;max-width:1200px;margin:auto}
h1{font-size:1.3em;margin:.2em 0 .8em}h2{font-size:1.1em;margin:1.4em 0 .5em}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:.8em}
.card{background:#fff;border-radius:8px;padding:.8em 1em;box-shadow:0 1px 2px #0002}.card b{display:block;font-size:1.6em}
.scroll{overflow-x:auto;background:#fff;border-radius:8px;box-shadow:0 1px 2px #0002}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.45em .7em;border-bottom:1px solid #e3e6ea;
vertical-align:top;white-space:nowrap}td.wrap{white-space:normal;min-width:16em}td.excerpt{font-family:monospace;font-size:.85em;max-width:32em;overflow-wrap:anywhere}th{background:#eef0f4;font-weight:600}
.ok{color:#17753a}.bad{color:#b3261e}.warn{color:#9a6700}form.inline{display:inline}
input,select{font:inherit;padding:.35em .5em;border:1px solid #b8bfca;border-radius:5px}
button.act{font:inherit;padding:.35em .8em;border-radius:5px;border:1px solid #1c2a44;background:#1c2a44;color:#fff;cursor:pointer}
.filters{display:flex;flex-wrap:wrap;gap:.5em;margin-bottom:.8em}.note{background:#e8f3ec;padding:.6em 1em;border-radius:6px}
.error{background:#fbe9e7;padding:.6em 1em;border-radius:6px}.muted{color:#687385}
)";

std::string Esc(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Get(const Fields& f, const std::string& key) {
  auto it = f.find(key);
  return it == f.end() ? std::string() : it->second;
}

// "2026-12-02T04:05:47.53523+00:00" -> "2026-12-02 04:05:47"
std::string Time(const std::string& ts) {
  if (ts.size() < 19) return ts.empty() ? "-" : ts;
  std::string out = ts.substr(0, 19);
  out[10] = ' ';
  return out;
}

std::string Dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string StatusClass(const std::string& status) {
  if (status == "delivered" || status == "active" || status == "completed" || status == "healthy") return "ok";
  if (status == "dead_lettered" || status == "failed" || status == "disabled" || status == "unhealthy") return "bad";
  return "warn";
}

std::string Badge(const std::string& status) {
  return R"(<span class=")" + StatusClass(status) + R"(">)" + Esc(status) + "</span>";
}

Response Html(std::string body, int status = 200) {
  Response r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::move(body);
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
                         "frame-ancestors 'none'; base-uri 'none'");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  return r;
}

Response Redirect(const std::string& to) {
  Response r;
  r.status = 303;
  r.content_type = "text/plain; charset=utf-8";
  r.headers.emplace_back("Location", to);
  return r;
}

std::string Document(const std::string& title, const std::string& content, const std::string& csrf) {
  std::string nav;
  if (!csrf.empty()) {
    nav = R"(<a href="/console/">Overview</a><a href="/console/subscriptions">Subscriptions</a>)"
          R"(<a href="/console/dead-letters">Dead letters</a><a href="/console/runs">Runs</a>)"
          R"(<form class="inline" method="post" action="/console/sign-out"><input type="hidden" name="csrf" )"
          R"(value=")" + Esc(csrf) + R"("><button type="submit">Sign out</button></form>)";
  }
  return R"(<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" )"
         R"(content="width=device-width, initial-scale=1"><title>)" + Esc(title) + " · pgcourier</title><style>" +
         kStyle + "</style></head><body><header><strong>pgcourier</strong>" + nav + "</header><main><h1>" +
         Esc(title) + "</h1>" + content + "</main></body></html>";
}

std::string Hidden(const std::string& name, const std::string& value) {
  return R"(<input type="hidden" name=")" + Esc(name) + R"(" value=")" + Esc(value) + R"(">)";
}

// A table of rows: each cell already HTML.
std::string Table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows,
                  const std::string& empty) {
  if (rows.empty()) return R"(<p class="muted">)" + Esc(empty) + "</p>";
  std::string out = R"(<div class="scroll"><table><thead><tr>)";
  for (const auto& h : head) out += "<th>" + Esc(h) + "</th>";
  out += "</tr></thead><tbody>";
  for (const auto& row : rows) {
    out += "<tr>";
    for (const auto& cell : row) out += cell.rfind("<td", 0) == 0 ? cell : "<td>" + cell + "</td>";
    out += "</tr>";
  }
  return out + "</tbody></table></div>";
}

std::string Link(const std::string& href, const std::string& text) {
  return R"(<a href=")" + Esc(href) + R"(">)" + Esc(text) + "</a>";
}

std::vector<Fields> Items(const std::string& page) { return json::ObjectsAt(page, "/items").value_or(std::vector<Fields>{}); }
Fields One(const std::string& doc) {
  auto all = json::ObjectsAt(doc, "");
  return all && !all->empty() ? all->front() : Fields{};
}

std::string FilterJson(std::initializer_list<std::pair<const char*, std::string>> pairs) {
  std::string out = "{";
  for (const auto& [k, v] : pairs) {
    if (v.empty()) continue;
    if (out.size() > 1) out += ",";
    out += JsonString(k) + ":" + JsonString(v);
  }
  return out + "}";
}

bool IsId(const std::string& s) {
  if (s.empty() || s.size() > 255) return false;
  for (const unsigned char c : s) {
    if (!std::isalnum(c) && c != '_' && c != '.' && c != ':' && c != '~' && c != '-') return false;
  }
  return true;
}

}  // namespace

std::string Console::Csrf(const std::string& token) const { return master_key_->Fingerprint("console-csrf:" + token); }

Response Console::SignInPage(const std::string& error, int status) {
  // Double-submit: the same random value in a cookie and in the form.
  const std::string nonce = master_key_->Fingerprint(signing::GenerateWebhookSecret(32));
  std::string content;
  if (!error.empty()) content += R"(<p class="error">)" + Esc(error) + "</p>";
  content += R"(<form method="post" action="/console/sign-in" class="card" style="max-width:30em">)" +
             Hidden("csrf", nonce) +
             R"(<p><label>Operator token<br><input type="password" name="token" autocomplete="off" )"
             R"(style="width:100%" required></label></p><p><button class="act" type="submit" )"
             R"(id="sign-in">Sign in</button></p><p class="muted">pgcourierctl api-token create --operator</p></form>)";
  auto r = Html(Document("Sign in", content, ""), status);
  r.headers.emplace_back("Set-Cookie", std::string("pgc_login=") + nonce +
                                           "; Path=/console/; HttpOnly; SameSite=Strict" + (secure_ ? "; Secure" : ""));
  return r;
}

Response Console::SignIn(const Request& r) {
  const auto form = ParseForm(r.body);
  const auto cookies = ParseCookies(r.Header("cookie").value_or(""));
  const auto nonce = cookies.find("pgc_login");
  const auto sent = form.find("csrf");
  if (nonce == cookies.end() || sent == form.end() ||
      !signing::ConstantTimeEquals(nonce->second, sent->second)) {
    return Html(Document("Forbidden", R"(<p class="error">The form is missing its CSRF token; reload the page.</p>)",
                         ""),
                403);
  }
  const auto token = form.count("token") ? form.at("token") : std::string();
  auto caller = api_.Authenticate(token);
  if (caller.refusal) {
    const int status = caller.refusal->status;
    return SignInPage(status == 401 ? "That token is not valid." : "The database is unavailable; try again.",
                      status == 401 ? 401 : 503);
  }
  if (caller.scope.tenant_id) return SignInPage("That is a tenant's token; the console needs an operator token.", 403);
  auto out = Redirect("/console/");
  out.headers.emplace_back("Set-Cookie", "pgc_session=" + token + "; Path=/console/; HttpOnly; SameSite=Strict" +
                                             (secure_ ? "; Secure" : ""));
  out.headers.emplace_back("Set-Cookie", "pgc_login=; Path=/console/; Max-Age=0; HttpOnly; SameSite=Strict");
  return out;
}

std::optional<Response> Console::Handle(const Request& r) {
  if (r.path == "/console") return Redirect("/console/");
  if (r.path.rfind("/console/", 0) != 0) return std::nullopt;
  if (master_key_ == nullptr) return Html(Document("Console unavailable", "<p>No master key is configured.</p>", ""), 503);
  try {
    if (r.path == "/console/sign-in") {
      if (r.method == "POST") return SignIn(r);
      return SignInPage("");
    }
    const auto cookies = ParseCookies(r.Header("cookie").value_or(""));
    const auto session = cookies.find("pgc_session");
    if (session == cookies.end()) return Redirect("/console/sign-in");
    auto caller = api_.Authenticate(session->second);
    if (caller.refusal || caller.scope.tenant_id) {
      if (caller.refusal && caller.refusal->status == 503) {
        return Html(Document("Unavailable", R"(<p class="error">The database is unavailable.</p>)", ""), 503);
      }
      auto out = Redirect("/console/sign-in");
      out.headers.emplace_back("Set-Cookie", "pgc_session=; Path=/console/; Max-Age=0; HttpOnly; SameSite=Strict");
      return out;
    }
    if (r.method == "POST") {
      const auto form = ParseForm(r.body);
      const auto sent = form.find("csrf");
      if (sent == form.end() || !signing::ConstantTimeEquals(sent->second, Csrf(session->second))) {
        return Html(Document("Forbidden", R"(<p class="error">The form is missing its CSRF token; reload the page.</p>)",
                             Csrf(session->second)),
                    403);
      }
      if (r.path == "/console/sign-out") {
        auto out = Redirect("/console/sign-in");
        out.headers.emplace_back("Set-Cookie", "pgc_session=; Path=/console/; Max-Age=0; HttpOnly; SameSite=Strict");
        return out;
      }
    }
    return Page(r, session->second, caller);
  } catch (const std::exception& e) {
    const auto problem = ProblemFromStore(e);
    return Html(Document(ReasonPhrase(problem.status), R"(<p class="error">)" +
                                                           Esc(problem.status == 404 ? "Nothing here." : "That failed.") +
                                                           "</p>", ""),
                problem.status);
  }
}

Response Console::Page(const Request& r, const std::string& token, const Api::Caller& caller) {
  const std::string csrf = Csrf(token);
  store::api::Pool& shard = *caller.pool;  // the pool of the token's shard
  std::vector<std::string> seg;
  {
    std::size_t start = 1;
    while (start <= r.path.size()) {
      auto end = r.path.find('/', start);
      if (end == std::string::npos) end = r.path.size();
      if (end > start) seg.push_back(r.path.substr(start, end - start));
      start = end + 1;
    }
  }
  const Arg all{std::nullopt};  // the operator's scope: every tenant
  const std::size_t n = seg.size();
  for (std::size_t i = 2; i < n; ++i) {
    if (!IsId(seg[i])) return Html(Document("Not found", "<p>Nothing here.</p>", csrf), 404);
  }

  if (n == 1 && r.method == "GET") {
    const Fields o = One(shard.CallJson("api_overview", {all}));
    auto card = [&](const char* label, const std::string& value, const char* href) {
      return std::string(R"(<a class="card" href=")") + href + R"(" style="color:inherit;text-decoration:none">)" +
             label + "<b>" + Esc(Dash(value)) + "</b></a>";
    };
    std::string content = R"(<div class="cards">)" + card("Queue depth", Get(o, "queue_depth"), "/console/subscriptions") +
                          card("Oldest due", Time(Get(o, "oldest_due_at")), "/console/subscriptions") +
                          card("Dead letters", Get(o, "dead_letters"), "/console/dead-letters") +
                          card("Paused subscriptions", Get(o, "paused_subscriptions"), "/console/subscriptions") +
                          card("Unhealthy connections", Get(o, "unhealthy_connections"), "/console/runs") +
                          card("Open escalations", Get(o, "open_escalations"), "/console/runs") +
                          card("Dead-lettered runs", Get(o, "runs_dead_lettered"), "/console/runs") + "</div>";
    // With a shard map the token's shard is the console's: say which.
    return Html(Document(caller.shard.empty() ? "Overview" : "Overview of shard " + caller.shard, content, csrf));
  }

  if (n == 2 && seg[1] == "subscriptions") {
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : Items(shard.CallJson("api_subscriptions", {all, Arg{r.Query("after")}, Arg{"500", "integer"}}))) {
      rows.push_back({Link("/console/subscriptions/" + Get(s, "id"), Get(s, "id")), Esc(Get(s, "tenant_id")),
                      R"(<td class="wrap">)" + Esc(Get(s, "url")) + "</td>", Badge(Get(s, "state")),
                      Esc(Get(s, "consecutive_failures")), Esc(Get(s, "held_deliveries")),
                      Esc(Time(Get(s, "last_success_at"))), Esc(Time(Get(s, "last_failure_at")))});
    }
    return Html(Document("Subscriptions",
                         Table({"Subscription", "Tenant", "URL", "State", "Failures in a row", "Held", "Last success",
                                "Last failure"},
                               rows, "No subscriptions yet."),
                         csrf));
  }

  if (n == 3 && seg[1] == "subscriptions") {
    const Fields s = One(shard.CallJson("api_subscription", {all, Arg{seg[2]}}));
    std::string content = "<p>" + Esc(Get(s, "tenant_id")) + " · " + Esc(Get(s, "url")) + " · " +
                          Badge(Get(s, "state")) + " · events " + Esc(Get(s, "event_types")) + "</p>";
    std::vector<std::vector<std::string>> rows;
    for (const auto& d : Items(shard.CallJson("api_deliveries", {all, Arg{FilterJson({{"subscription_id", seg[2]},
                                                                                          {"status", r.Query("status").value_or("")}}),
                                                                          "jsonb"},
                                                                  Arg{r.Query("after")}, Arg{"200", "integer"}}))) {
      rows.push_back({Link("/console/deliveries/" + Get(d, "id"), Get(d, "id")), Esc(Get(d, "event_type")),
                      Badge(Get(d, "status")), Esc(Get(d, "attempts")), Esc(Dash(Get(d, "last_status_code"))),
                      Esc(Time(Get(d, "created_at"))), Esc(Time(Get(d, "completed_at")))});
    }
    content += "<h2>Deliveries</h2>" + Table({"Delivery", "Event type", "Status", "Attempts", "Last HTTP", "Created",
                                              "Finished"},
                                             rows, "No deliveries yet.");
    return Html(Document("Subscription " + seg[2], content, csrf));
  }

  if (n == 3 && seg[1] == "deliveries") {
    const std::string doc = shard.CallJson("api_delivery", {all, Arg{seg[2]}});
    const Fields d = One(doc);
    std::string content = "<p>" + Badge(Get(d, "status")) + " · " + Esc(Get(d, "event_type")) + " · event " +
                          Esc(Get(d, "event_id")) + " · " +
                          Link("/console/subscriptions/" + Get(d, "subscription_id"), Get(d, "subscription_id")) +
                          " · " + Esc(Get(d, "url")) + "</p>";
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : json::ObjectsAt(doc, "/attempts").value_or(std::vector<Fields>{})) {
      rows.push_back({Esc(Get(a, "attempt")), Esc(Time(Get(a, "started_at"))), Esc(Get(a, "duration_ms")),
                      Esc(Dash(Get(a, "status_code"))), Badge(Get(a, "outcome")), Esc(Dash(Get(a, "error_class"))),
                      Esc(Get(a, "retryable") == "true" ? "yes" : "no"),
                      R"(<td class="wrap">)" + Esc(Dash(Get(a, "error_summary"))) + "</td>",
                      R"(<td class="wrap excerpt">)" + Esc(Dash(Get(a, "response_excerpt"))) + "</td>"});
    }
    content += "<h2>Attempts</h2>" + Table({"#", "Started", "ms", "HTTP", "Outcome", "Class", "Retryable",
                                            "Error (redacted)", "Response (excerpt)"},
                                           rows, "No attempt yet.");
    return Html(Document("Delivery " + seg[2], content, csrf));
  }

  if (n == 2 && seg[1] == "dead-letters" && r.method == "GET") {
    const std::string sub = r.Query("subscription_id").value_or("");
    const std::string type = r.Query("event_type").value_or("");
    if ((!sub.empty() && !IsId(sub)) || type.size() > 255) return Html(Document("Bad filter", "", csrf), 400);
    std::string content;
    if (auto replayed = r.Query("replayed")) {
      content += R"(<p class="note" id="replayed">Replayed )" + Esc(*replayed) + " dead letter(s).</p>";
    }
    content += R"(<form class="filters" method="get" action="/console/dead-letters"><input name="subscription_id" )"
               R"(placeholder="subscription id" value=")" + Esc(sub) + R"("><input name="event_type" )"
               R"(placeholder="event type" value=")" + Esc(type) + R"("><button class="act" type="submit">Filter)"
               "</button></form>";
    std::vector<std::vector<std::string>> rows;
    for (const auto& d : Items(shard.CallJson("api_dead_letters", {all, Arg{FilterJson({{"subscription_id", sub},
                                                                                            {"event_type", type}}),
                                                                            "jsonb"},
                                                                    Arg{r.Query("after")}, Arg{"200", "integer"}}))) {
      const std::string id = Get(d, "delivery_id");
      rows.push_back({R"(<form class="inline" method="post" action="/console/dead-letters/replay">)" +
                          Hidden("csrf", csrf) + Hidden("delivery_id", id) +
                          R"(<button class="act" type="submit" data-replay=")" + Esc(id) + R"(">Replay</button></form>)",
                      Link("/console/deliveries/" + id, id), Esc(Get(d, "tenant_id")),
                      Link("/console/subscriptions/" + Get(d, "subscription_id"), Get(d, "subscription_id")),
                      Esc(Get(d, "event_type")), Esc(Get(d, "attempts")), Esc(Dash(Get(d, "last_status_code"))),
                      R"(<td class="wrap">)" + Esc(Dash(Get(d, "last_error"))) + "</td>",
                      Esc(Time(Get(d, "dead_lettered_at")))});
    }
    content += Table({"", "Delivery", "Tenant", "Subscription", "Event type", "Attempts", "Last HTTP", "Last error",
                      "Dead-lettered"},
                     rows, "No dead letters.");
    if (!rows.empty()) {
      const std::string count = Get(
          One(shard.CallJson("api_replay", {all, Arg{FilterJson({{"subscription_id", sub}, {"event_type", type}}), "jsonb"},
                                            Arg{"true", "boolean"}})),
          "deliveries");
      content += R"(<h2>Replay every one of these</h2><form method="post" action="/console/dead-letters/replay">)" +
                 Hidden("csrf", csrf) + Hidden("subscription_id", sub) + Hidden("event_type", type) +
                 "<p>Dry run: " + Esc(count) + R"( dead letter(s) match. <button class="act" type="submit">Replay )" +
                 Esc(count) + "</button></p></form>";
    }
    return Html(Document("Dead letters", content, csrf));
  }

  if (n == 3 && seg[1] == "dead-letters" && seg[2] == "replay" && r.method == "POST") {
    const auto form = ParseForm(r.body);
    auto field = [&](const char* k) { return form.count(k) ? form.at(k) : std::string(); };
    const std::string filters = FilterJson({{"delivery_id", field("delivery_id")},
                                            {"subscription_id", field("subscription_id")},
                                            {"event_type", field("event_type")}});
    const Fields done = One(shard.CallJson("api_replay", {all, Arg{filters, "jsonb"}, Arg{"false", "boolean"}}));
    spdlog::info("console: replayed {} dead letter(s)", Get(done, "deliveries"));
    return Redirect("/console/dead-letters?replayed=" + UrlEncode(Get(done, "deliveries")));
  }

  if (n == 2 && seg[1] == "runs") {
    std::vector<std::vector<std::string>> rows;
    for (const auto& x : Items(shard.CallJson("api_runs", {all, Arg{FilterJson({{"status", r.Query("status").value_or("")}}),
                                                                    "jsonb"},
                                                           Arg{r.Query("after")}, Arg{"200", "integer"}}))) {
      rows.push_back({Link("/console/runs/" + Get(x, "id"), Get(x, "id")), Esc(Get(x, "tenant_id")),
                      Esc(Get(x, "provider")), Esc(Get(x, "operation")), Badge(Get(x, "status")),
                      Esc(Get(x, "attempts")), Esc(Dash(Get(x, "last_error_code"))), Esc(Time(Get(x, "created_at")))});
    }
    std::string content = Table({"Run", "Tenant", "Provider", "Operation", "Status", "Attempts", "Last error",
                                 "Created"},
                                rows, "No runs.");
    std::vector<std::vector<std::string>> escalations;
    for (const auto& e : Items(shard.CallJson("api_escalations", {all, Arg{"{}", "jsonb"}, Arg{std::nullopt},
                                                                  Arg{"200", "integer"}}))) {
      escalations.push_back({Esc(Get(e, "id")), Esc(Get(e, "tenant_id")), Esc(Get(e, "source")),
                             Esc(Get(e, "source_id")), R"(<td class="wrap">)" + Esc(Get(e, "reason")) + "</td>",
                             Esc(Time(Get(e, "created_at"))),
                             R"(<form class="inline" method="post" action="/console/escalations/)" + Esc(Get(e, "id")) +
                                 R"(/acknowledge">)" + Hidden("csrf", csrf) +
                                 R"(<button class="act" type="submit">Acknowledge</button></form>)"});
    }
    content += "<h2>Open escalations</h2>" + Table({"Escalation", "Tenant", "Source", "Id", "Reason", "Raised", ""},
                                                   escalations, "No open escalations.");
    return Html(Document("Runs", content, csrf));
  }

  if (n == 3 && seg[1] == "runs") {
    const std::string doc = shard.CallJson("api_run", {all, Arg{seg[2]}});
    const Fields x = One(doc);
    std::string content = "<p>" + Badge(Get(x, "status")) + " · " + Esc(Get(x, "provider")) + " " +
                          Esc(Get(x, "operation")) + " · " + Esc(Get(x, "method")) + " " + Esc(Get(x, "path")) +
                          (Get(x, "waiting_for").empty() ? "" : " · waiting for " + Esc(Get(x, "waiting_for"))) + "</p>";
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : json::ObjectsAt(doc, "/attempts").value_or(std::vector<Fields>{})) {
      rows.push_back({Esc(Get(a, "attempt")), Esc(Time(Get(a, "started_at"))), Esc(Dash(Get(a, "status_code"))),
                      Badge(Get(a, "outcome")), Esc(Dash(Get(a, "error_code"))),
                      Esc(Get(a, "retryable") == "true" ? "yes" : "no"),
                      R"(<td class="wrap">)" + Esc(Dash(Get(a, "error_summary"))) + "</td>",
                      R"(<td class="wrap excerpt">)" + Esc(Dash(Get(a, "response_excerpt"))) + "</td>"});
    }
    content += "<h2>Attempts</h2>" + Table({"#", "Started", "HTTP", "Outcome", "Code", "Retryable", "Error (redacted)",
                                            "Response (excerpt)"},
                                           rows, "No attempt yet.");
    std::vector<std::vector<std::string>> failures;
    for (const auto& f : json::ObjectsAt(doc, "/failures").value_or(std::vector<Fields>{})) {
      failures.push_back({Esc(Get(f, "category")), Esc(Get(f, "error_code")),
                          R"(<td class="wrap">)" + Esc(Dash(Get(f, "message"))) + "</td>", Esc(Get(f, "next_action")),
                          Esc(Time(Get(f, "created_at"))), Esc(Time(Get(f, "resolved_at")))});
    }
    content += "<h2>Failures</h2>" + Table({"Category", "Code", "Message", "Next action", "Recorded", "Resolved"},
                                           failures, "No failures.");
    return Html(Document("Run " + seg[2], content, csrf));
  }

  if (n == 4 && seg[1] == "escalations" && seg[3] == "acknowledge" && r.method == "POST") {
    shard.CallJson("api_acknowledge_escalation", {all, Arg{seg[2]}});
    return Redirect("/console/runs");
  }
  return Html(Document("Not found", "<p>Nothing here.</p>", csrf), 404);
}

}  // namespace pgcourier::gateway::console
