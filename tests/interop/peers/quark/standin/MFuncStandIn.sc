// SyncText (HyperDisCo) makes an adclib MFunc for key presses in its editor window; adclib is
// not installed where the tests run headless, and no key is ever pressed there.
MFunc {
	var funcs;
	*new { ^super.new.initStandIn }
	initStandIn { funcs = () }
	add { |name, func| funcs.put(name, func) }
	enable { |name| }
	disable { |name| }
	activeNames { ^[] }
	value { |... args| }
}
