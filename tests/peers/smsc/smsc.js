// An SMSC for Junebug's SMPP tests, built on the npm `smpp` package (a server we did not
// write): it binds ESMEs, answers submit_sm, sends delivery receipts and MO messages.
//
// Usage: node smsc.js '{"system_id": "junebug", "password": "secret"}'
// With "tls": {"key": PATH, "cert": PATH} it speaks SMPP over TLS. With "receipt_delay_ms": N
// (default 0: at once, right after the submit_sm_resp) each receipt is sent N ms after its
// submit_sm_resp; the `receipt_delay` command ({"cmd": "receipt_delay", "ms": N}) changes it.
//
// It listens on 127.0.0.1 on a free port, prints one JSON object per line on stdout for
// everything that happens ({"event": "listening", "port": N} first), and takes one JSON
// command per line on stdin, so a test drives it like an operator's SMSC that misbehaves on
// command. Decoding of what Junebug sends (GSM 03.38, Latin-1, UCS2, UDH) is the library's.
'use strict';

const fs = require('fs');
const smpp = require('smpp');
const readline = require('readline');

const options = Object.assign(
	{ system_id: 'junebug', password: 'secret', receipt_ids: 'hex' },
	JSON.parse(process.argv[2] || '{}')
);

const sessions = new Set();
let nextMessageId = 0x1a2b00;
let throttleNext = 0; // submit_sm to answer with ESME_RTHROTTLED
let rejectNext = { count: 0, status: 0 }; // submit_sm to answer with an error status
let answerEnquireLink = true;
let receiptsFirst = false; // send the receipt before the submit_sm_resp
let receiptStat = 'DELIVRD';
let holdSubmits = false; // leave submit_sm unanswered
let receipts = true;
let receiptDelayMs = Number(options.receipt_delay_ms) || 0; // 0: send receipts at once

function emit(event) {
	process.stdout.write(JSON.stringify(event) + '\n');
}

function text(field) {
	if (field === undefined || field === null) return null;
	if (typeof field === 'string') return field;
	if (Buffer.isBuffer(field)) return field.toString('hex');
	return typeof field.message === 'string' ? field.message : field.message.toString('hex');
}

function udh(field) {
	if (!field || !field.udh) return [];
	return field.udh.map((ie) => ie.toString('hex'));
}

function receiptText(id, stat) {
	const err = stat === 'DELIVRD' ? '000' : '001';
	return `id:${id} sub:001 dlvrd:001 submit date:2611250101 done date:2611250102 stat:${stat} err:${err} text:`;
}

function sendReceipt(session, pdu, id) {
	const receiptId = options.receipt_ids === 'decimal' ? parseInt(id, 16).toString(10) : id;
	session.deliver_sm(
		{
			source_addr: pdu.destination_addr,
			destination_addr: pdu.source_addr,
			esm_class: 0x04,
			short_message: receiptText(receiptId, receiptStat),
		},
		(resp) => emit({ event: 'receipt_resp', id, status: resp.command_status })
	);
	emit({ event: 'receipt_sent', id, stat: receiptStat });
}

function onSubmit(session, pdu) {
	if (throttleNext > 0) {
		throttleNext -= 1;
		emit({ event: 'throttled', destination_addr: pdu.destination_addr });
		session.send(pdu.response({ command_status: smpp.ESME_RTHROTTLED }));
		return;
	}
	if (rejectNext.count > 0) {
		rejectNext.count -= 1;
		emit({ event: 'rejected', destination_addr: pdu.destination_addr, status: rejectNext.status });
		session.send(pdu.response({ command_status: rejectNext.status }));
		return;
	}
	const id = (nextMessageId++).toString(16).toUpperCase();
	emit({
		event: 'submit_sm',
		message_id: id,
		sequence_number: pdu.sequence_number,
		source_addr: pdu.source_addr,
		destination_addr: pdu.destination_addr,
		esm_class: pdu.esm_class,
		data_coding: pdu.data_coding,
		registered_delivery: pdu.registered_delivery,
		text: text(pdu.short_message),
		udh: udh(pdu.short_message),
		payload: text(pdu.message_payload),
		sar: pdu.sar_msg_ref_num === undefined ? null : {
			reference: pdu.sar_msg_ref_num,
			total: pdu.sar_total_segments,
			sequence: pdu.sar_segment_seqnum,
		},
		ussd_service_op: pdu.ussd_service_op === undefined ? null : pdu.ussd_service_op,
		its_session_info: pdu.its_session_info ? pdu.its_session_info.toString('hex') : null,
	});
	if (holdSubmits) return;
	const wantsReceipt = receipts && (pdu.registered_delivery & 0x03) !== 0;
	if (wantsReceipt && receiptsFirst) sendReceipt(session, pdu, id);
	session.send(pdu.response({ message_id: id }));
	if (wantsReceipt && !receiptsFirst) {
		if (receiptDelayMs > 0) {
			setTimeout(() => {
				// The ESME may have gone meanwhile: nothing to send it on then.
				if (sessions.has(session)) sendReceipt(session, pdu, id);
			}, receiptDelayMs);
		} else {
			sendReceipt(session, pdu, id);
		}
	}
}

function bindHandler(mode) {
	return function (session) {
		return function (pdu) {
			const ok = pdu.system_id === options.system_id && pdu.password === options.password;
			emit({ event: 'bind', mode, system_id: pdu.system_id, ok, interface_version: pdu.interface_version });
			if (!ok) {
				session.send(pdu.response({ command_status: smpp.ESME_RINVPASWD }));
				session.close();
				return;
			}
			session.mode = mode;
			session.send(pdu.response({ system_id: 'test-smsc' }));
		};
	};
}

const binds = ['bind_transceiver', 'bind_transmitter', 'bind_receiver'].map((m) => [m, bindHandler(m)]);

const serverOptions = options.tls
	? { key: fs.readFileSync(options.tls.key), cert: fs.readFileSync(options.tls.cert) }
	: {};

const server = smpp.createServer(serverOptions, (session) => {
	sessions.add(session);
	emit({ event: 'connected', count: sessions.size });
	for (const [name, handler] of binds) session.on(name, handler(session));
	session.on('submit_sm', (pdu) => onSubmit(session, pdu));
	session.on('enquire_link', (pdu) => {
		emit({ event: 'enquire_link', answered: answerEnquireLink });
		if (answerEnquireLink) session.send(pdu.response());
	});
	session.on('unbind', (pdu) => {
		emit({ event: 'unbind' });
		session.send(pdu.response());
		session.close();
	});
	session.on('error', (e) => emit({ event: 'session_error', error: String(e) }));
	session.on('close', () => {
		sessions.delete(session);
		emit({ event: 'closed', count: sessions.size });
	});
});

// The session that receives MO traffic: a transceiver or receiver bind.
function receiver() {
	for (const s of sessions) {
		if (s.mode === 'bind_transceiver' || s.mode === 'bind_receiver') return s;
	}
	return null;
}

function deliverMo(command) {
	const session = receiver();
	if (!session) return emit({ event: 'error', error: 'no receiver bound' });
	// `hex`: raw user data octets (packed GSM, say), sent as they are; else `text`.
	const body = command.hex !== undefined ? Buffer.from(command.hex, 'hex') : command.text;
	const pdu = {
		source_addr: command.from,
		destination_addr: command.to,
		esm_class: command.udh ? 0x40 : 0,
		short_message: command.udh
			? { udh: Buffer.from(command.udh, 'hex'), message: body }
			: body,
	};
	if (command.data_coding !== undefined) pdu.data_coding = command.data_coding;
	if (command.ussd_service_op !== undefined) pdu.ussd_service_op = command.ussd_service_op;
	if (command.its_session_info) pdu.its_session_info = Buffer.from(command.its_session_info, 'hex');
	session.deliver_sm(pdu, (resp) =>
		emit({ event: 'mo_resp', tag: command.tag, status: resp.command_status })
	);
}

const commands = {
	mo: deliverMo,
	throttle: (c) => { throttleNext = c.count; },
	reject: (c) => { rejectNext = { count: c.count, status: c.status }; },
	enquire_link: (c) => { answerEnquireLink = c.answer; },
	receipts_first: (c) => { receiptsFirst = c.on; },
	receipts: (c) => { receipts = c.on; },
	receipt_stat: (c) => { receiptStat = c.stat; },
	receipt_delay: (c) => { receiptDelayMs = Number(c.ms) || 0; },
	hold_submits: (c) => { holdSubmits = c.on; },
	disconnect: () => { for (const s of sessions) s.destroy(); },
};

readline.createInterface({ input: process.stdin }).on('line', (line) => {
	if (!line.trim()) return;
	const command = JSON.parse(line);
	const run = commands[command.cmd];
	if (!run) return emit({ event: 'error', error: `unknown command ${command.cmd}` });
	run(command);
	emit({ event: 'done', cmd: command.cmd, tag: command.tag });
});
process.stdin.on('end', () => process.exit(0));

server.listen(0, '127.0.0.1', () => emit({ event: 'listening', port: server.address().port }));
