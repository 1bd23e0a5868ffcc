// A TempoClock that follows a tcposcrouter group's tempo, as LinkClock follows a Link session:
// its beats are the group's beats, its tempo the group's, its bars the group's bars of Q beats
// (counted from beat 0). Setting its tempo sets the group's; every member's clock follows.

TcpOscRouterClock : TempoClock {
	var <client;

	*new { |client|
		^super.new(2, 0).prJoinGroup(client)
	}

	prJoinGroup { |routerClient|
		client = routerClient;
		client.prAddClock(this);
		this.prFollow;
	}

	// Called by the client when the group's line or the clocks' difference changes.
	prFollow {
		var now = thisThread.seconds, line = client.lineAt(now), offset = client.clockOffset;
		if (line.isNil or: { this.isRunning.not }) { ^this };
		this.setTempoAtSec(line[2] / 60, now);
		this.beats_(client.beatAt(now));
		baseBarBeat = 0;
		baseBar = 0;
		beatsPerBar = line[3];
		barsPerBeat = beatsPerBar.reciprocal;
		// A change told ahead: followed at its moment.
		client.lines.do { |ahead|
			if (ahead[0] > (now + offset)) {
				SystemClock.schedAbs(ahead[0] - offset, { this.prFollow; nil });
			}
		};
		this.changed(\tempo);
	}

	// The group's tempo, in beats per second as TempoClock's: now, for every member.
	tempo_ { |newTempo| client.setTempo(newTempo * 60) }

	// The group's tempo from its next bar on.
	setTempoAtNextBar { |newTempo| client.setTempoAtNextBar(newTempo * 60) }

	// Bars of `newBeatsPerBar` beats for the group, from the next beat that is a multiple of it.
	beatsPerBar_ { |newBeatsPerBar|
		var next = (this.beats / newBeatsPerBar).floor + 1 * newBeatsPerBar;
		client.setTempo(client.tempo, next, newBeatsPerBar);
	}

	// Start (true) or stop (false) the group's shared transport.
	playing { ^client.playing }
	playing_ { |flag| client.setPlaying(flag) }

	stop {
		client.prRemoveClock(this);
		super.stop;
	}
}
