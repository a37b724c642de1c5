// Sends one message with nodemailer (npm) through Postern's submission port: STARTTLS required, the server's
// certificate verified against a CA file and a host name (SNI), then AUTH PLAIN. Used by
// tests/e2e/test_tls_clients.py. Usage: node nodemailer_send.mjs PORT USER PASSWORD TO SUBJECT CAFILE SERVERNAME
// Prints the server's final reply as JSON; exits non-zero on any error.
import fs from "node:fs";
import nodemailer from "nodemailer";

const [port, user, pass, to, subject, caFile, servername] = process.argv.slice(2);
const transport = nodemailer.createTransport({
  host: "127.0.0.1",
  port: Number(port),
  secure: false,
  requireTLS: true,
  authMethod: "PLAIN",
  auth: { user, pass },
  tls: { ca: [fs.readFileSync(caFile)], servername, rejectUnauthorized: true },
  connectionTimeout: 10000,
  greetingTimeout: 10000,
  socketTimeout: 10000,
});
try {
  const info = await transport.sendMail({
    from: user,
    to,
    subject,
    text: "sent by nodemailer over STARTTLS\n",
  });
  console.log(JSON.stringify({ response: info.response, accepted: info.accepted, rejected: info.rejected }));
} catch (err) {
  console.error(`nodemailer: ${err.code || ""} ${err.message}`);
  process.exit(1);
}
