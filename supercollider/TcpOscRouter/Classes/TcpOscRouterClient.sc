// A member of a tcposcrouter group (docs/protocol.md in the router's repository).
// It takes the constructor arguments and methods of HyperDisCo's OSCRouterClient, so that
// SyncText and CodingDojo work with it unchanged, and adds what the router offers beyond:
// its error replies, a place kept through a drop (a session that resumes), a list of routers
// to fail over to, the group's time, state and tempo.

TcpOscRouterClient {
	classvar <all, <>verbosity = 1;
	// A session numbers what the router sends; sclang is handed a bundle's messages one by
	// one, so this client asks the router to number messages, not packets.
	classvar <>sessionSeconds = 30, <>ackSeconds = 0.5, <>silentSeconds = 8;

	var <userName, <groupName, <serverAddr, <userPassword, <groupPassword, <serverPort, <onJoined;
	var <>onFailure, <>onState, <>onTempo, <>onPeers, <>onResumed;
	var <netAddr, <tcpRecvPort, <peers, <hasJoined = false, <state, <servers, <serverIndex = 0;
	var <responderFuncs, <privateResponderFuncs, <token, <received = 0, acked = 0;
	var recvFunc, joinActions, randomId, closing = false, away = false, lastHeard = 0;
	var outbox, watcher, syncer, stateIncoming;
	var <lines, <clockOffset = 0, <clockReady = false, timeAsked, exchanges, <clocks;

	*initClass { all = IdentitySet[] }

	*new { |userName, groupName = 'oscrouter', serverAddr = "bgo.la", userPassword,
		groupPassword = 'oscrouter', serverPort = 55555, onJoined|
		^super.newCopyArgs(userName.asSymbol, groupName.asSymbol, serverAddr,
			userPassword.asSymbol, groupPassword.asSymbol, serverPort, onJoined).init
	}

	storeArgs { ^[userName, groupName] }
	printOn { |stream| this.storeOn(stream) }

	postAt { |level, string| if (verbosity >= level) { "% : %\n".postf(this, string) } }

	init {
		responderFuncs = IdentityDictionary[];
		privateResponderFuncs = IdentityDictionary[];
		peers = [];
		state = IdentityDictionary[];
		outbox = List[];
		lines = [];
		exchanges = List[];
		clocks = IdentitySet[];
		servers = this.prServers(serverAddr, serverPort);
		all.add(this);
		ShutDown.add({ this.close });
	}

	// serverAddr: "host", "host:port", or an Array of them (routers to fail over to, in turn).
	prServers { |addresses, port|
		if (addresses.isString or: { addresses.isKindOf(Symbol) }) { addresses = [addresses] };
		^addresses.collect { |address|
			var parts = address.asString.split($:);
			[parts[0], if (parts.size > 1) { parts[1].asInteger } { port }]
		}
	}

	isConnected { ^netAddr.notNil and: { netAddr.isConnected } }

	// -- joining ---------------------------------------------------------------------------

	join { |onSuccess, onFailureHere|
		if (hasJoined and: { this.isConnected }) {
			this.postAt(1, "already joined; to join again, call .close first");
			onSuccess.value(this);
			^this
		};
		closing = false;
		joinActions = [onSuccess, onFailureHere];
		this.prConnect(false, 0);
	}

	prConnect { |resuming, tries|
		var host, port;
		#host, port = servers[serverIndex];
		this.postAt(2, "connecting to %:%".format(host, port));
		fork {
			var address = NetAddr(host, port), connected;
			connected = try { address.connect({ |closed| this.prDisconnected(closed) }); true } { false };
			case
			{ closing } { if (connected) { address.disconnect } }
			{ connected } { this.prConnected(address, resuming) }
			{ this.prCannotConnect(resuming, tries) };
		};
	}

	prCannotConnect { |resuming, tries|
		var host, port;
		#host, port = servers[serverIndex];
		this.postAt(0, "could not connect to %:%".format(host, port));
		serverIndex = (serverIndex + 1) % servers.size;
		if (resuming.not and: { tries + 1 >= servers.size }) {
			this.prFailed('cannot_connect', "no router answered at " ++ servers.collect { |s| s.join($:) });
			^this
		};
		fork {
			min(0.5 * (2 ** (tries div: servers.size)), 5).wait;
			if (closing.not) { this.prConnect(resuming, tries + 1) };
		}
	}

	prConnected { |address, resuming|
		netAddr = address;
		tcpRecvPort = nil;
		lastHeard = Main.elapsedTime;
		if (recvFunc.notNil) { thisProcess.removeOSCRecvFunc(recvFunc) };
		recvFunc = { |msg, time, addr, port| this.prReceive(msg, time, addr, port) };
		thisProcess.addOSCRecvFunc(recvFunc);
		if (resuming and: { token.notNil }) {
			this.postAt(1, "connected again; resuming its place after message %".format(received));
			netAddr.sendMsg('/oscrouter/session/resume', groupName, token, received);
		} {
			this.prRegister;
		};
		this.prWatch;
	}

	prRegister {
		randomId = 999999.rand;
		token = nil;
		received = acked = 0;
		netAddr.sendMsg('/oscrouter/register', userName, userPassword, groupName, groupPassword, randomId);
	}

	prJoined { |port|
		var wasAway = away;
		tcpRecvPort = port;
		hasJoined = true;
		away = false;
		this.postAt(0, "joined % as % at %:%".format(groupName, userName, netAddr.hostname, netAddr.port));
		netAddr.sendMsg('/oscrouter/session', sessionSeconds, "messages");
		this.prFlush;
		this.prSyncClock(16);
		if (wasAway.not) {
			onJoined.value(this);
			joinActions !? { joinActions[0].value(this) };
			joinActions = nil;
		}
	}

	prFailed { |code, reason|
		this.postAt(0, "the router refused: %: %".format(code, reason));
		onFailure.value(code, reason, this);
		joinActions !? { joinActions[1].value(code, reason, this) };
		if (hasJoined.not) { joinActions = nil };
	}

	// -- what the router sends ---------------------------------------------------------------

	prReceive { |msg, time, addr, port|
		var address;
		if (netAddr.isNil or: { addr.port != netAddr.port } or: { addr.addr != netAddr.addr }) { ^this };
		if (tcpRecvPort.notNil and: { port != tcpRecvPort }) { ^this };
		address = msg[0];
		lastHeard = Main.elapsedTime;
		if (token.notNil and: { address.asString.beginsWith("/oscrouter/session").not }) {
			received = received + 1;
		};
		case
		{ address.asString == ("/oscrouter/register/" ++ userName ++ "/" ++ randomId) } { this.prJoined(port) }
		{ address == '/oscrouter/error' } { this.prError(msg[1], msg[2]) }
		{ address == '/oscrouter/userlist' } { peers = msg[1..]; onPeers.value(peers, this) }
		{ address == '/oscrouter/private' } {
			privateResponderFuncs[this.class.prPath(msg[2])].value(msg[1], msg[2..])
		}
		{ address == '/oscrouter/session' } { token = if (msg[1].asString.isEmpty) { nil } { msg[1] } }
		{ address == '/oscrouter/session/resumed' } { this.prResumed(port) }
		{ address == '/oscrouter/tempo' } { this.prTold(msg[1..]) }
		{ address == '/oscrouter/time' } { this.prTimeReply(msg) }
		{ address == '/oscrouter/state/begin' } { stateIncoming = IdentityDictionary[] }
		{ address == '/oscrouter/state/end' } { this.prStateTold }
		{ address == '/oscrouter/state' } { this.prStateChanged(msg[1].asSymbol, msg[2..], time, addr, port) }
		{ address == '/oscrouter/state/clear' } { this.prStateChanged(msg[1].asSymbol, nil) }
		{ address == '/oscrouter/register' } { }  // the second form of the reply
		{
			stateIncoming !? { stateIncoming.put(address, msg[1..]) };
			responderFuncs[this.class.prPath(address)].value(msg, time, addr, port);
		};
	}

	prError { |code, reason|
		code = code.asSymbol;
		if (code == 'resume_expired') {
			this.postAt(1, "its place could not be resumed (%); joining anew".format(reason));
			^this.prRegister;
		};
		this.prFailed(code, reason);
	}

	prResumed { |port|
		this.postAt(0, "back in % after a drop: its place resumed, nothing missed".format(groupName));
		tcpRecvPort = port;
		hasJoined = true;
		away = false;
		this.prFlush;
		onResumed.value(this);
	}

	// -- a drop: noticed, resumed ------------------------------------------------------------

	prDisconnected { |closed|
		if (closed !== netAddr) { ^this };  // an older connection
		if (closing) { ^this };
		this.prAway;
	}

	prAway {
		if (away) { ^this };
		away = true;
		hasJoined = false;
		this.postAt(0, "lost the connection to the router; trying again");
		if (this.isConnected) { netAddr.disconnect };
		fork { 0.5.wait; if (closing.not) { this.prConnect(true, 0) } };
	}

	prWatch {
		watcher.stop;
		watcher = fork {
			loop {
				ackSeconds.wait;
				if (this.isConnected and: { hasJoined }) {
					if (received > acked) {
						acked = received;
						netAddr.sendMsg('/oscrouter/session/ack', acked);
					};
					// The router answers a time request at once: silence means a dead link.
					if (Main.elapsedTime - lastHeard > (silentSeconds / 2)) { this.prAskTime };
					if (Main.elapsedTime - lastHeard > silentSeconds) { this.prAway };
				};
			}
		};
	}

	close {
		closing = true;
		watcher.stop;
		syncer.stop;
		if (this.isConnected) {
			// No place to keep: the others see it leave at once.
			if (token.notNil) { netAddr.sendMsg('/oscrouter/session', 0) };
			netAddr.disconnect;
		};
		if (recvFunc.notNil) { thisProcess.removeOSCRecvFunc(recvFunc); recvFunc = nil };
		hasJoined = false;
		token = nil;
		peers = [];
		this.postAt(1, "closed");
	}

	// -- sending -----------------------------------------------------------------------------

	sendMsg { |... msg|
		// While away, kept (up to 1000) and sent once the place is resumed: a TCP NetAddr
		// whose connection dropped would send over UDP instead.
		if (this.isConnected and: { hasJoined }) { netAddr.sendMsg(*msg) } {
			if (outbox.size < 1000) { outbox.add(msg) };
		}
	}

	sendMsgArray { |symbol, array| this.sendMsg(symbol, *array) }

	sendPrivate { |userName ... args|
		if (peers.includes(userName.asSymbol)) {
			this.sendMsg('/oscrouter/private', userName, *args);
		} {
			this.postAt(1, "sendPrivate: no user % in the group".format(userName.cs));
		}
	}

	// A bundle at `delta` seconds from now on the group's clock: its time tag is the router's
	// time, so every member that corrects by its own clockOffset plays it at the same moment.
	sendBundle { |delta ... msgs|
		if (this.isConnected and: { hasJoined }) {
			netAddr.sendBundle(if (delta.isNil) { nil } { delta + clockOffset }, *msgs);
		}
	}

	prFlush {
		var waiting = outbox.copy;
		outbox.clear;
		waiting.do { |msg| netAddr.sendMsg(*msg) };
	}

	// -- responders (as OSCRouterClient's) ---------------------------------------------------

	// An address without its leading slash is the same address (as OSCFunc takes it): sclang
	// sends 'syncText_x' as /syncText_x.
	*prPath { |id| id = id.asString; ^if (id[0] == $/) { id.asSymbol } { ("/" ++ id).asSymbol } }
	addResp { |id, function| responderFuncs.put(this.class.prPath(id), function) }
	removeResp { |id| responderFuncs.removeAt(this.class.prPath(id)) }
	addPrivateResp { |id, function| privateResponderFuncs.put(this.class.prPath(id), function) }
	removePrivateResp { |id| privateResponderFuncs.removeAt(this.class.prPath(id)) }

	// -- the group's state -------------------------------------------------------------------

	setState { |address ... args|
		address = address.asSymbol;
		state.put(address, args);
		this.sendMsg('/oscrouter/state', address, *args);
		onState.value(address, args, this);
	}

	clearState { |address|
		address = address.asSymbol;
		state.removeAt(address);
		this.sendMsg('/oscrouter/state/clear', address);
		onState.value(address, nil, this);
	}

	prStateTold {
		var told = stateIncoming;
		stateIncoming = nil;
		told !? {
			state = told;
			state.keysValuesDo { |address, args| onState.value(address, args, this) };
		};
		// From now on the changes come wrapped, so the state stays current.
		netAddr.sendMsg('/oscrouter/state/follow', 1);
	}

	prStateChanged { |address, args, time, addr, port|
		if (args.isNil) { state.removeAt(address) } { state.put(address, args) };
		onState.value(address, args, this);
		// A change reaches the responders as the message itself, as for a client that does
		// not follow the state.
		args !? { responderFuncs[this.class.prPath(address)].value([address] ++ args, time, addr, port) };
	}

	// -- the group's clock and tempo ---------------------------------------------------------

	// The router's time now, in this sclang's seconds (Main.elapsedTime + clockOffset).
	groupTime { ^Main.elapsedTime + clockOffset }

	prAskTime {
		if (this.isConnected.not) { ^this };
		timeAsked = Main.elapsedTime;
		// /oscrouter/time takes a time tag, which sendMsg cannot make: the packet is written
		// whole, its length first (sendRaw writes the bytes as they are).
		netAddr.sendRaw(Int8Array[0, 0, 0, 28] ++ "/oscrouter/time".ascii.as(Int8Array)
			++ Int8Array[0, 44, 116, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
	}

	prTimeReply { |msg|
		var now = Main.elapsedTime, sent = timeAsked, trip;
		timeAsked = nil;
		if (sent.isNil) { ^this };
		// sclang reads a time tag as its own seconds: the router's receive and send times
		// arrive in this machine's time line, shifted by the clocks' difference.
		trip = (now - sent) - (msg[3] - msg[2]);
		exchanges.add([trip, ((msg[2] - sent) + (msg[3] - now)) / 2]);
		while { exchanges.size > 16 } { exchanges.removeAt(0) };
	}

	// The clocks' difference, from the quickest of a few exchanges, again every 30 s.
	prSyncClock { |first = 16|
		syncer.stop;
		syncer = fork {
			var count = first;
			loop {
				count.do { this.prAskTime; 0.05.wait };
				0.2.wait;
				if (exchanges.notEmpty) {
					clockOffset = exchanges.minItem { |e| e[0] }[1];
					clockReady = true;
					clocks.do(_.prFollow);
				};
				count = 8;
				30.wait;
			}
		}
	}

	// A line as told: [t0 (this sclang's seconds of the router's time), beat0, bpm, Q, playing].
	prTold { |line|
		var now = this.groupTime, current = lines.select { |old| old[0] <= now }.keep(-1);
		// A change told ahead waits for its t0, the line in force kept until then; it replaces
		// any change that was waiting.
		lines = if (line[0] > now) { current ++ [line] } { [line] };
		clocks.do(_.prFollow);
		onTempo.value(line, this);
	}

	// The line in force at `seconds` (this sclang's, Main.elapsedTime's).
	lineAt { |seconds|
		var at = seconds + clockOffset, found;
		lines.do { |line| if (line[0] <= at) { found = line } };
		^found ?? { lines.first }
	}

	beatAt { |seconds|
		var line = this.lineAt(seconds ? Main.elapsedTime);
		if (line.isNil) { ^nil };
		^line[1] + ((seconds ? Main.elapsedTime) + clockOffset - line[0] * line[2] / 60)
	}

	tempo { ^this.lineAt(Main.elapsedTime) !? { |line| line[2] } }
	quantum { ^this.lineAt(Main.elapsedTime) !? { |line| line[3] } }
	playing { ^this.lineAt(Main.elapsedTime) !? { |line| line[4] == 1 } }

	// The group's tempo, now or from `atBeat` on (with bars of `quantum` beats from there).
	setTempo { |bpm, atBeat, quantum|
		case
		{ atBeat.isNil } { this.sendMsg('/oscrouter/tempo/set', bpm.asFloat) }
		{ quantum.isNil } { this.sendMsg('/oscrouter/tempo/set', bpm.asFloat, atBeat.asFloat) }
		{ this.sendMsg('/oscrouter/tempo/set', bpm.asFloat, atBeat.asFloat, quantum.asInteger) };
	}

	setTempoAtNextBar { |bpm|
		var beat = this.beatAt(Main.elapsedTime), q = this.quantum ? 4;
		this.setTempo(bpm, (beat / q).floor + 1 * q);
	}

	setPlaying { |playing, atBeat|
		var flag = if (playing == true or: { playing == 1 }) { 1 } { 0 };
		if (atBeat.isNil) { this.sendMsg('/oscrouter/tempo/play', flag) } {
			this.sendMsg('/oscrouter/tempo/play', flag, atBeat.asFloat)
		}
	}

	prAddClock { |clock| clocks.add(clock) }
	prRemoveClock { |clock| clocks.remove(clock) }
}
