/** Number and time formatting for the page. */

export function rate(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  if (n === 0) return '0';
  if (n < 10) return n.toFixed(1);
  if (n < 10_000) return String(Math.round(n));
  return `${(n / 1000).toFixed(n < 100_000 ? 1 : 0)}k`;
}

export function count(n: number): string {
  if (n < 10_000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 100_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  if (n < 1000) return `${Math.round(n)} ms`;
  return `${(n / 1000).toFixed(1)} s`;
}

export function uptime(sec: number | null | undefined): string {
  if (sec === null || sec === undefined) return '–';
  if (sec < 60) return `${sec} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min`;
  if (sec < 86_400) return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
  return `${Math.floor(sec / 86_400)} d ${Math.floor((sec % 86_400) / 3600)} h`;
}

const pad = (n: number) => String(n).padStart(2, '0');

export function clock(at: number): string {
  const d = new Date(at);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A score as the ranking shows it: enough digits to tell close nodes apart. */
export function score(n: number): string {
  return n.toPrecision(6);
}
