import type { Host } from "@atomkit/core";

/** GET / on the host's port through `host.connect` (an SSH channel for remote hosts). */
export async function probe(host: Host, port: number, path = "/"): Promise<string> {
  try {
    const socket = await host.connect({ port });
    return await new Promise<string>((resolve) => {
      let data = "";
      const timer = setTimeout(() => {
        socket.destroy();
        resolve("(no answer)");
      }, 1_000);
      socket.on("data", (d: Buffer) => {
        data += d.toString("utf8");
      });
      socket.on("error", () => {});
      // over SSH a direct-tcpip channel may end without a close event: settle on either
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        const [head = "", body = ""] = data.split("\r\n\r\n");
        const status = head.split(" ")[1] ?? "?";
        resolve(`${status} ${body.trim()}`.trim());
      };
      socket.on("end", settle);
      socket.on("close", settle);
      socket.write(`GET ${path} HTTP/1.0\r\nHost: localhost\r\n\r\n`);
    });
  } catch {
    return "(not listening)";
  }
}

/** Probes GET / every 50 ms until stopped; reports how many answered and the longest gap. */
export function watchHttp(host: Host, port: number) {
  let stopped = false;
  let total = 0;
  let ok = 0;
  let lastOk = 0;
  let maxGapMs = 0;
  let firstOkSeen = false;
  const loop = (async () => {
    while (!stopped) {
      const t = Date.now();
      const answer = await probe(host, port);
      total++;
      if (/^\d{3} /.test(answer)) {
        ok++;
        if (firstOkSeen) maxGapMs = Math.max(maxGapMs, t - lastOk);
        firstOkSeen = true;
        lastOk = t;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { total, ok, maxGapMs };
    },
  };
}

/** Stops the demo app (cleanup): the pid file's process, if it is still there. */
export async function stopApp(host: Host, pidFile: string): Promise<void> {
  const pid = (await host.readFile(pidFile)).toString().trim();
  if (/^\d+$/.test(pid)) await host.exec(["kill", pid], { reject: false });
}
