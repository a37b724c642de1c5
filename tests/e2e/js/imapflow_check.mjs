// tests/e2e/js/imapflow_check.mjs: drives one IMAP server with imapflow (a real Node.js client) for
// tests/e2e/test_imap_imapflow.py.
//
//   node imapflow_check.mjs HOST PORT USER PASSWORD
//   (or IMAP_HOST, IMAP_PORT, IMAP_USER, IMAP_PASSWORD in the environment)
//
// Protocol on stdout, one line each, for the Python side:
//   READY <json>   INBOX was read, a flag set, and the client is in IDLE: the test now delivers a message
//   EXISTS <json>  the 'exists' event fired (with whether the client was idling when it came)
//   RESULT <json>  everything the test asserts on; the script then logs out and exits 0
// Errors go to stderr with exit code 1. The script gives up after 20 s without an 'exists' event.
import { ImapFlow } from 'imapflow';

const [host, port, user, pass] = [
    process.argv[2] || process.env.IMAP_HOST || '127.0.0.1',
    Number(process.argv[3] || process.env.IMAP_PORT),
    process.argv[4] || process.env.IMAP_USER,
    process.argv[5] || process.env.IMAP_PASSWORD,
];

const out = (word, obj) => process.stdout.write(`${word} ${JSON.stringify(obj)}\n`);

// Subject header of a raw message (the test does not rely on the server's ENVELOPE for it).
function subjectOf(source) {
    const head = source.toString('latin1').split(/\r?\n\r?\n/)[0].replace(/\r?\n[ \t]+/g, ' ');
    const m = head.match(/^Subject:[ \t]*(.*)$/im);
    return m ? m[1].trim() : null;
}

function messageJson(msg) {
    return {
        seq: msg.seq,
        uid: msg.uid,
        flags: [...(msg.flags || [])].sort(),
        size: msg.size,
        subject: msg.source ? subjectOf(msg.source) : null,
        sourceLength: msg.source ? msg.source.length : null,
        source: msg.source ? msg.source.toString('base64') : null,
        hasEnvelope: msg.envelope !== undefined && msg.envelope !== null,
        hasBodyStructure: msg.bodyStructure !== undefined && msg.bodyStructure !== null,
    };
}

async function main() {
    const client = new ImapFlow({
        host,
        port,
        secure: false,
        doSTARTTLS: false, // plaintext on loopback: the test servers have no certificate
        tls: { rejectUnauthorized: false },
        auth: { user, pass },
        logger: false,
        disableAutoIdle: true, // the script enters IDLE itself, at a known moment
        disableCompression: true,
        connectionTimeout: 10000,
        greetingTimeout: 10000,
    });
    client.on('error', (err) => {
        process.stderr.write(`imapflow error: ${err.stack || err}\n`);
        process.exit(1);
    });

    await client.connect();
    const result = { capabilities: [...client.capabilities.keys()].sort() };

    result.mailboxes = (await client.list()).map((m) => ({
        path: m.path,
        delimiter: m.delimiter,
        specialUse: m.specialUse || null,
        subscribed: !!m.subscribed,
    }));

    const mailbox = await client.mailboxOpen('INBOX');
    result.opened = {
        path: mailbox.path,
        exists: mailbox.exists,
        uidValidity: Number(mailbox.uidValidity),
        uidNext: mailbox.uidNext,
        readOnly: !!mailbox.readOnly,
    };

    result.messages = [];
    if (mailbox.exists > 0) {
        for await (const msg of client.fetch('1:*', {
            uid: true, flags: true, envelope: true, bodyStructure: true, size: true, source: true,
        })) {
            result.messages.push(messageJson(msg));
        }
    }

    // Set \Flagged on the first message, by UID, and read the flags back from the server.
    if (result.messages.length > 0) {
        const uid = result.messages[0].uid;
        result.flagStored = await client.messageFlagsAdd({ uid: String(uid) }, ['\\Flagged'], { uid: true });
        const back = await client.fetchOne(String(uid), { uid: true, flags: true }, { uid: true });
        result.flagsAfterStore = [...back.flags].sort();
    }

    // IDLE, and wait for the server to announce the message the test delivers meanwhile.
    let idling = false;
    const exists = new Promise((resolve) => {
        client.on('exists', (ev) => resolve({ ...ev, duringIdle: idling && client.idling }));
    });
    const idleDone = client.idle().then(() => { idling = false; });
    idling = true;
    const deadline = Date.now() + 5000;
    while (!client.idling && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
    }
    out('READY', { idling: client.idling });
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no exists event within 20 s')), 20000);
    });
    const ev = await Promise.race([exists, timeout]);
    clearTimeout(timer);
    result.existsEvent = ev;
    out('EXISTS', ev);

    // Any command ends IDLE; fetch what arrived.
    result.newMessages = [];
    for await (const msg of client.fetch(`${ev.prevCount + 1}:*`, { uid: true, flags: true, source: true })) {
        result.newMessages.push(messageJson(msg));
    }
    await idleDone;

    // APPEND through imapflow (UIDPLUS gives the new UID) and check it is there.
    const appended = await client.append('INBOX',
        Buffer.from('From: imapflow <flow@example.test>\r\nSubject: appended by imapflow\r\n\r\nhello\r\n'),
        ['\\Seen']);
    result.appended = appended ? { uid: appended.uid, uidValidity: Number(appended.uidValidity) } : null;
    const status = await client.status('INBOX', { messages: true, uidNext: true });
    result.statusAfterAppend = { messages: status.messages, uidNext: status.uidNext };

    await client.logout();
    out('RESULT', result);
}

main().then(() => process.exit(0), (err) => {
    process.stderr.write(`imapflow_check failed: ${err.stack || err}\n`);
    if (err.response) process.stderr.write(`server said: ${JSON.stringify(err.response)}\n`);
    process.exit(1);
});
