/** The meshd release and the protocol versions it speaks. */
export const VERSION = '0.1.0';
/** Raft wire protocol version carried in every transport call; bump on incompatible change. */
export const RAFT_PROTOCOL_VERSION = 1;
