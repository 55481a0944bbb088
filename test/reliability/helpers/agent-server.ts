/**
 * The agent side of the IPC between a test and an agent process in a network namespace
 * (ecmp-agent.ts, netns-agent.ts; the test side is agent-client.ts): every call answered with its
 * result or its error, "ready" sent first, and the agent gone with its test process.
 */
export function serveCalls(handle: (cmd: string, args: Record<string, unknown>) => Promise<unknown>): void {
  process.on('message', (m: { id: number; cmd: string; args: Record<string, unknown> }) => {
    handle(m.cmd, m.args ?? {}).then(
      (result) => process.send?.({ id: m.id, ok: true, result }),
      (err: Error) => process.send?.({ id: m.id, ok: false, error: err.message }),
    );
  });
  // The test process is our only reason to live.
  process.on('disconnect', () => process.exit(0));
  process.send?.({ id: 0, ok: true, result: 'ready' });
}
