/** node-webot's WXBizMsgCrypt (lib/msg_crypto.js), an independent WeChat crypto the tests compare with. */
declare module 'wechat-crypto' {
  class WXBizMsgCrypt {
    constructor(token: string, encodingAESKey: string, id: string);
    readonly key: Buffer;
    /** sha1 of [token, timestamp, nonce, encrypt] sorted and joined. */
    getSignature(timestamp: string, nonce: string, encrypt: string): string;
    decrypt(encrypt: string): { message: string; id: string };
    encrypt(text: string): string;
  }
  export = WXBizMsgCrypt;
}
