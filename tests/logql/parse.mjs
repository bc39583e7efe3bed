// Parses LogQL queries with Grafana's own grammar (@grafana/lezer-logql, the parser behind
// Grafana's Loki query editor) and reports every error node it finds.
//
// stdin:  a JSON array of {"name": string, "logql": string}
// stdout: a JSON array of {"name", "ok", "errors": [{"from", "to", "text"}]}
// Exit status: 0 when every query parsed, 1 when one did not, 2 on bad input.
import { parser } from "@grafana/lezer-logql";

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on("data", (chunk) => chunks.push(chunk));
    process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    process.stdin.on("error", reject);
  });
}

function check(query) {
  const tree = parser.parse(query);
  const errors = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) {
        const from = Math.max(0, node.from - 20);
        errors.push({
          from: node.from,
          to: node.to,
          text: query.slice(from, Math.min(query.length, node.to + 20)),
        });
      }
    },
  });
  return errors;
}

let input;
try {
  input = JSON.parse(await readStdin());
  if (!Array.isArray(input)) throw new Error("expected a JSON array");
} catch (err) {
  process.stderr.write(`parse.mjs: bad input: ${err.message}\n`);
  process.exit(2);
}

const results = input.map(({ name, logql }) => {
  const errors = check(String(logql));
  return { name, ok: errors.length === 0, errors };
});
process.stdout.write(JSON.stringify(results) + "\n");
process.exit(results.every((r) => r.ok) ? 0 : 1);
