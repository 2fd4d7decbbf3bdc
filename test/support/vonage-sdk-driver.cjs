/**
 * Drives a Conversation API with the official Vonage Node SDK and prints what the SDK made of each
 * answer, as one JSON line. Run as a child process (plain Node): the SDK's dependencies are ES
 * modules that jest's module loader cannot require.
 *
 * Input (stdin, JSON): { apiHost, applicationId, privateKey, conversationName, userName, signatureSecret, callbacks: [authorization] }
 */
const { Auth } = require('@vonage/auth');
const { Conversations } = require('@vonage/conversations');
const { verifySignature } = require('@vonage/jwt');
const { Users } = require('@vonage/users');

async function main(input) {
  const auth = new Auth({ applicationId: input.applicationId, privateKey: input.privateKey });
  const options = { apiHost: input.apiHost };
  const conversations = new Conversations(auth, options);
  const users = new Users(auth, options);
  const out = {};

  const conversation = await conversations.createConversation({ name: input.conversationName, displayName: 'Through the SDK' });
  out.conversation = conversation;
  out.readConversation = await conversations.getConversation(conversation.id);
  const user = await users.createUser({ name: input.userName, displayName: 'SDK user' });
  out.user = user;
  const member = await conversations.createMember(conversation.id, { state: 'joined', user: { id: user.id }, channel: { type: 'app' } });
  out.member = member;
  out.members = await conversations.getMemberPage(conversation.id);
  const event = await conversations.createEvent(conversation.id, {
    type: 'custom:wechat:message',
    from: member.id,
    body: { direction: 'outbound', content: 'hello from the SDK' },
  });
  out.event = event;
  out.readEvent = await conversations.getEvent(conversation.id, event.id);
  try {
    await conversations.createConversation({ name: `${input.conversationName}-long`, displayName: 'x'.repeat(51) });
    out.tooLong = { refused: false };
  } catch (error) {
    out.tooLong = { refused: true, status: error.response ? error.response.status : undefined, body: error.response ? await error.response.json() : undefined };
  }
  out.verified = input.callbacks.map((authorization) => {
    const token = authorization.replace(/^Bearer /, '');
    return { withSecret: verifySignature(token, input.signatureSecret), withAnother: verifySignature(token, 'not-the-secret') };
  });
  return out;
}

let text = '';
process.stdin.on('data', (chunk) => (text += chunk));
process.stdin.on('end', () => {
  main(JSON.parse(text)).then(
    (out) => process.stdout.write(`${JSON.stringify(out)}\n`),
    (error) => {
      process.stderr.write(`${error && error.stack ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
});
