/**
 * What a text model reads of a raw e-mail (RFC 5322): its Subject and its body, the other headers
 * dropped. Why: headers are mostly routing (Received, Message-ID, dates, server names) that says which
 * mailbox and month an e-mail came from rather than what it says; in a public corpus they let a model
 * score by source instead of content, and a participant's own headers name its servers and contacts.
 * docs/text.md reports the accuracy with and without them.
 * The body is taken as it stands: no MIME decoding, so HTML tags and base64 runs become words too.
 */

/** Subject and body of `raw`, one blank line apart; a text without a header block is all body. */
export function emailText (raw: string): string {
  const text = raw.replace(/\r\n?/g, '\n')
  const end = text.indexOf('\n\n')
  const head = end < 0 ? text : text.slice(0, end)
  if (!looksLikeHeaders(head)) return text
  const body = end < 0 ? '' : text.slice(end + 2)
  const subject = headerValue(head, 'subject')
  return subject === undefined ? body : `${subject}\n\n${body}`
}

/** True when the first line reads as a header ("Name: value") or an mbox "From " line. */
function looksLikeHeaders (head: string): boolean {
  const first = head.slice(0, head.indexOf('\n') < 0 ? head.length : head.indexOf('\n'))
  return /^[!-9;-~]+:/.test(first) || first.startsWith('From ')
}

/** The first `name` header's value, folded lines joined (RFC 5322 section 2.2.3), or undefined. */
function headerValue (head: string, name: string): string | undefined {
  const lines = head.split('\n')
  const prefix = `${name.toLowerCase()}:`
  const start = lines.findIndex(line => line.toLowerCase().startsWith(prefix))
  if (start < 0) return undefined
  let value = lines[start].slice(prefix.length)
  for (let i = start + 1; i < lines.length && /^[ \t]/.test(lines[i]); i++) value += lines[i]
  return value.trim()
}
